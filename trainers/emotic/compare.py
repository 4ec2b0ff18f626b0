"""Compare EMOTIC checkpoints: size, compute, CPU latency per person, mAP and VAD error.

For each run folder (its ``best.safetensors``) or file: parameters, multiply-accumulates of
one person (body crop plus context image at the checkpoint's sizes), median CPU milliseconds
per person at batch 1 and 32, and the validation / test figures in the metadata (test
figures appear once ``vidaffect export --metrics`` has stored them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from vidaffect.models.emotic_checkpoint import load_emotic_checkpoint
from vidaffect_trainers.profiling import count_macs, cpu_ms_per_item, format_table, resolve

COLUMNS = [
    ("name", "name", "{}"),
    ("backbone", "backbone", "{}"),
    ("params_m", "params(M)", "{:.2f}"),
    ("gmacs", "GMACs", "{:.2f}"),
    ("ms_b1", "ms/person@1", "{:.1f}"),
    ("ms_b32", "ms/person@32", "{:.1f}"),
    ("val_mAP", "val_mAP", "{:.4f}"),
    ("test_mAP", "test_mAP", "{:.4f}"),
    ("test_vad_mae", "test_VAD_MAE", "{:.3f}"),
]


def profile(target: str | Path, repeats: int = 10) -> dict[str, Any]:
    """One row of the comparison (``None`` where unknown)."""
    name, ckpt = resolve(target)
    model, meta = load_emotic_checkpoint(ckpt)
    assert meta.context_size is not None
    shapes = [(3, *meta.input_size), (3, *meta.context_size)]
    return {
        "name": name,
        "checkpoint": str(ckpt),
        "backbone": meta.arch_kwargs.get("backbone"),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "gmacs": count_macs(model, [(1, *s) for s in shapes]) / 1e9,
        "ms_b1": cpu_ms_per_item(model, shapes, 1, repeats),
        "ms_b32": cpu_ms_per_item(model, shapes, 32, max(2, repeats // 5), warmup=1),
        "val_mAP": meta.metrics.get("val_mAP"),
        "test_mAP": meta.metrics.get("test_mAP"),
        "test_vad_mae": meta.metrics.get("test_vad_mae"),
    }


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run ``compare``: print the table (or a JSON list with ``--json``); returns the rows."""
    torch.set_num_threads(args.threads)
    rows = [profile(t, args.repeats) for t in args.targets]
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows, COLUMNS), end="")
        print(
            f"GMACs: billions of multiply-adds per person (body + context); CPU times with {args.threads} thread(s)"
        )
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "targets",
        nargs="+",
        metavar="RUN_OR_CHECKPOINT",
        help="run folder (uses best.safetensors) or .safetensors file",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10, help="timed runs at batch 1 (median)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
