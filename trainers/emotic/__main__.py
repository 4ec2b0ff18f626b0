"""``python -m trainers.emotic {stats,train,evaluate,compare}``: the EMOTIC context model CLI."""

from __future__ import annotations

import argparse
import sys

from trainers.emotic import compare as compare_mod
from trainers.emotic import evaluate as evaluate_mod
from trainers.emotic import stats as stats_mod
from trainers.emotic import train as train_mod
from vidaffect.errors import VidaffectError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.emotic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, help_text in (
        ("stats", stats_mod, "ground-truth statistics and the label-prior mAP (no images needed)"),
        ("train", train_mod, "train or resume a body + context model"),
        ("evaluate", evaluate_mod, "test mAP, VAD error, co-occurrence (one JSON line) and a report folder"),
        ("compare", compare_mod, "size, compute, CPU latency and mAP of checkpoints"),
    ):
        module.add_arguments(sub.add_parser(name, help=help_text))
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            print(train_mod.train(args))
        else:
            {"stats": stats_mod.main, "evaluate": evaluate_mod.main, "compare": compare_mod.main}[args.command](args)
    except (VidaffectError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
