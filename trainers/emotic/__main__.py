"""``python -m vidaffect_trainers.emotic {stats,train,evaluate,compare,export}``: the EMOTIC
context model's commands, the same as ``vidaffect stats|train|evaluate|compare|export --task emotic``."""

from __future__ import annotations

import sys

from vidaffect_trainers.commands import task_main


def main(argv: list[str] | None = None) -> int:
    return task_main("emotic", argv, prog="python -m vidaffect_trainers.emotic")


if __name__ == "__main__":
    sys.exit(main())
