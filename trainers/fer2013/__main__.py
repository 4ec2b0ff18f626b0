"""``python -m trainers.fer2013 {train,evaluate,compare}``: FER-2013 model training CLI."""

from __future__ import annotations

import argparse
import sys

from trainers.fer2013 import compare as compare_mod
from trainers.fer2013 import evaluate as evaluate_mod
from trainers.fer2013 import train as train_mod
from vidaffect.errors import VidaffectError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.fer2013", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train or resume a model")
    train_mod.add_arguments(p_train)
    p_eval = sub.add_parser("evaluate", help="test metrics (one JSON line) and a report folder")
    evaluate_mod.add_arguments(p_eval)
    p_cmp = sub.add_parser("compare", help="size, compute, CPU latency and accuracy of checkpoints")
    compare_mod.add_arguments(p_cmp)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            print(train_mod.train(args))
        elif args.command == "evaluate":
            evaluate_mod.main(args)
        elif args.command == "compare":
            compare_mod.main(args)
    except (VidaffectError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
