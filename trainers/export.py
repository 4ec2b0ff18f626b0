"""Export a run's best checkpoint as a small fp16 file for shipping.

    vidaffect export RUN_DIR/best.safetensors fer2013-mine.safetensors [--metrics report/metrics.json]

``--metrics`` merges an evaluation's figures (``top1``, ``macro_f1``, ...) into the metadata,
prefixed ``test_``, so the shipped file carries the numbers the README reports. Data paths
are recorded by their last two parts (``fer2013/test``), and distillation teachers and the
``--init`` model by their file name, not the machine's folders.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path, PurePath
from typing import Any

import torch

from vidaffect.models.checkpoint import load_checkpoint, save_checkpoint
from vidaffect_trainers.profiling import resolve


def dataset_name(path: str) -> str:
    """``/any/where/fer2013/test`` -> ``fer2013/test``."""
    return "/".join(PurePath(path).parts[-2:])


def checkpoint_name(entry: str | dict[str, Any]) -> str | dict[str, Any]:
    """A teacher, ``init`` or ensemble member entry of the training metadata with its path cut
    to the file name, or to the run folder and file name for a run's ``best.safetensors``
    (``/runs/t/best.safetensors`` -> ``t/best.safetensors``; shipped names stay as they are)."""
    if isinstance(entry, dict):
        if "checkpoint" not in entry:
            return entry
        return {**entry, "checkpoint": _short(str(entry["checkpoint"]))}
    return _short(entry)


def _short(path: str) -> str:
    p = PurePath(path)
    return "/".join(p.parts[-2:]) if p.name == "best.safetensors" and len(p.parts) > 1 else p.name


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a .safetensors checkpoint or a run folder")
    p.add_argument("out", help="the .safetensors file to write")
    p.add_argument("--metrics", help="evaluation metrics.json to record in the metadata")


def main(args: argparse.Namespace) -> Path:
    """Run ``export``: write the fp16 copy and print its size and figures; returns its path."""
    model, meta = load_checkpoint(resolve(args.checkpoint)[1])
    if args.metrics:
        with open(args.metrics) as f:
            figures = json.load(f)
        for key in (
            "top1",
            "macro_f1",
            "n",
            "data",
            "tta_flip",
            "mAP",
            "micro_f1",
            "ece",
            "ece_uncalibrated",
        ):
            if key in figures:
                meta.metrics[f"test_{key}"] = figures[key]
        if isinstance(figures.get("vad_mae"), dict):  # EMOTIC: per dimension, and their mean
            meta.metrics["test_vad_mae_per_dim"] = figures["vad_mae"]
            meta.metrics["test_vad_mae"] = round(
                sum(figures["vad_mae"].values()) / len(figures["vad_mae"]), 4
            )
    for table, key in ((meta.metrics, "test_data"), (meta.training, "data")):
        if isinstance(table.get(key), str):
            table[key] = dataset_name(table[key])
    for key in ("teachers", "ensemble_of"):
        if isinstance(meta.training.get(key), list):
            meta.training[key] = [checkpoint_name(t) for t in meta.training[key]]
    if "init" in meta.training:
        meta.training["init"] = checkpoint_name(meta.training["init"])
    path = save_checkpoint(args.out, model, meta, dtype=torch.float16)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, metrics {meta.metrics}")
    return path
