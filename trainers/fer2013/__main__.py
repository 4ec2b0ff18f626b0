"""``python -m vidaffect_trainers.fer2013 {train,evaluate,compare,export}``: the FER-2013
models' commands, the same as ``vidaffect train|evaluate|compare|export``."""

from __future__ import annotations

import sys

from vidaffect_trainers.commands import task_main


def main(argv: list[str] | None = None) -> int:
    return task_main("fer2013", argv, prog="python -m vidaffect_trainers.fer2013")


if __name__ == "__main__":
    sys.exit(main())
