"""The trainers' command-line options: the ``train`` options every trainer shares, argparse
value types, and ``KEY=VALUE`` architecture options.

Imports nothing heavy (no torch), so the benchmarks can use it in processes that must stay
light: a pipeline's stage processes are spawned, and each re-imports the main module.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def parse_arch_options(items: list[str]) -> dict[str, Any]:
    """``["width=32", "stem_stride=1"]`` -> ``{"width": 32, "stem_stride": 1}`` (JSON values)."""
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def ema_decay(text: str) -> float:
    """argparse type of ``--ema``: a float in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"EMA decay must be in [0, 1) (0: off), got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1], got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a float above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a value above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a float of 0 or more."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a value of 0 or more, got {text}")
    return value


def add_run_arguments(
    p: argparse.ArgumentParser,
    *,
    epochs: int,
    batch_size: int,
    weight_decay: float,
    warmup_epochs: int,
    limit_help: str,
) -> None:
    """The options every trainer's ``train`` command shares: schedule, optimiser, seed, early
    stop, weight averaging, threads, smoke-run limits, resume control."""
    p.add_argument("--out", required=True, help="run folder (checkpoints, history)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument(
        "--optimizer",
        choices=["sgd", "adam"],
        default="adam",
        help="adam: AdamW (decoupled weight decay); sgd: Nesterov momentum 0.9",
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=weight_decay)
    p.add_argument("--warmup-epochs", type=int, default=warmup_epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--patience", type=int, default=0, help="early stop after N epochs without val gain (0: off)"
    )
    p.add_argument(
        "--ema",
        type=ema_decay,
        default=0.0,
        metavar="DECAY",
        help="keep an exponential moving average of the weights with this decay per step "
        "(e.g. 0.999) and select, early-stop and save by it (0: off)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help=limit_help)
    p.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps")
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
