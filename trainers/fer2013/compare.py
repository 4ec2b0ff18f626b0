"""Compare checkpoints side by side: size, compute, CPU latency and accuracy.

For each run folder (its ``best.safetensors``) or ``.safetensors`` file: parameters,
multiply-accumulates per face (Conv2d and Linear layers, counted with forward hooks on one
``(1, C, H, W)`` input), median CPU milliseconds per face at batch 1 and 32, validation top-1
from the metadata, and test top-1 / macro-F1 (evaluated on ``--data`` if given, else the
metadata's ``test_top1`` / ``test_macro_f1``, else ``-``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from vidaffect.models.checkpoint import load_checkpoint
from vidaffect_trainers.fer2013.data import FaceSet, load
from vidaffect_trainers.fer2013.evaluate import evaluate_faces
from vidaffect_trainers.profiling import count_macs, cpu_ms_per_item, format_table, resolve


def profile(target: str | Path, faces: FaceSet | None = None, repeats: int = 20) -> dict[str, Any]:
    """One row of the comparison (values ``None`` where unknown)."""
    name, ckpt = resolve(target)
    model, meta = load_checkpoint(ckpt)
    shape = (meta.in_channels, *meta.input_size)
    row: dict[str, Any] = {
        "name": name,
        "checkpoint": str(ckpt),
        "arch": meta.arch,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "mmacs": count_macs(model, [(1, *shape)]) / 1e6,
        "ms_b1": cpu_ms_per_item(model, [shape], 1, repeats),
        "ms_b32": cpu_ms_per_item(model, [shape], 32, max(3, repeats // 4)),
        "val_top1": meta.metrics.get("val_top1"),
        "test_top1": meta.metrics.get("test_top1"),
        "test_macro_f1": meta.metrics.get("test_macro_f1"),
        "test_source": "metadata" if "test_top1" in meta.metrics else None,
    }
    row["mflops"] = 2 * row["mmacs"]
    if faces is not None:
        s = evaluate_faces(model, meta, faces, str(ckpt)).summary()
        row.update(test_top1=s["top1"], test_macro_f1=s["macro_f1"], test_source=faces.source)
    return row


COLUMNS = [  # (key, header, format)
    ("name", "name", "{}"),
    ("arch", "arch", "{}"),
    ("params_m", "params(M)", "{:.3f}"),
    ("mmacs", "MMACs", "{:.2f}"),
    ("ms_b1", "ms/face@1", "{:.3f}"),
    ("ms_b32", "ms/face@32", "{:.3f}"),
    ("val_top1", "val_top1", "{:.4f}"),
    ("test_top1", "test_top1", "{:.4f}"),
    ("test_macro_f1", "test_macroF1", "{:.4f}"),
]


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run ``compare``: print the table (or a JSON list with ``--json``); returns the rows."""
    torch.set_num_threads(args.threads)
    faces = load(args.data, args.split) if args.data else None
    rows = [profile(t, faces, args.repeats) for t in args.targets]
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows, COLUMNS), end="")
        print(
            "MMACs: millions of multiply-adds per face (FLOPs ~ 2 x MACs); "
            f"CPU times with {args.threads} thread(s)"
            + (f"; test = {faces.source}" if faces is not None else "")
        )
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "targets",
        nargs="+",
        metavar="RUN_OR_CHECKPOINT",
        help="run folder (uses best.safetensors) or .safetensors file",
    )
    p.add_argument("--data", default=None, help="evaluate test top-1 / macro-F1 on this data")
    p.add_argument("--split", default="test")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20, help="timed runs per batch size (median)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
