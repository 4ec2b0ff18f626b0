"""Evaluate an EMOTIC checkpoint: per-category AP and mAP, VAD error, thresholded F1, and the
co-occurrence of labels (ground truth and predicted).

Prints one JSON line and writes a report folder: ``metrics.json``, ``average_precision.csv``
and ``.png`` (AP, prevalence = the AP of the label prior, threshold per category),
``cooccurrence_true.csv``/``.png`` and ``cooccurrence_pred.csv``/``.png`` (``P(column |
row)``, 26x26; predictions use the checkpoint's per-category thresholds chosen on
validation), and ``learning_curves.png`` when the run folder has a ``history.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidaffect.models.checkpoint import CheckpointMeta
from vidaffect.models.emotic_checkpoint import load_emotic_checkpoint
from vidaffect.models.emotic_labels import CATEGORIES, VAD
from vidaffect_trainers import multilabel, plots
from vidaffect_trainers.common import print_evaluation
from vidaffect_trainers.emotic.data import EmoticAnnotations, EmoticImages, load_annotations
from vidaffect_trainers.emotic.train import PersonTensors, add_data_arguments, predict
from vidaffect_trainers.profiling import default_report, resolve


@dataclass
class EmoticEvaluation:
    """Predictions of a model on annotated persons.

    Attributes:
        targets: float32 ``(N, 26)`` 0/1; probs: float32 ``(N, 26)`` sigmoid outputs.
        vad_true, vad_pred: float32 ``(N, 3)`` on the 1-10 scale.
        thresholds: float ``(26,)`` per-category decision thresholds.
    """

    checkpoint: str
    data: str
    targets: np.ndarray
    probs: np.ndarray
    vad_true: np.ndarray
    vad_pred: np.ndarray
    thresholds: np.ndarray

    @cached_property
    def ap(self) -> np.ndarray:
        return multilabel.per_category_ap(self.targets, self.probs)

    @cached_property
    def predicted(self) -> np.ndarray:
        return (self.probs >= self.thresholds).astype(np.int64)

    def summary(self) -> dict[str, Any]:
        """The JSON-able figures: mAP, prior mAP, VAD MAE, F1 at the thresholds, per-category AP."""
        ap, pred, y = self.ap, self.predicted, self.targets.astype(np.int64)
        tp, fp, fn = (pred & y).sum(0), (pred & (1 - y)).sum(0), ((1 - pred) & y).sum(0)
        f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(len(tp)), where=(2 * tp + fp + fn) > 0)
        prior = multilabel.per_category_ap(self.targets, multilabel.prior_scores(self.targets, len(y)))
        mae = multilabel.vad_mae(self.vad_true, self.vad_pred)
        return {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "n": len(y),
            "mAP": round(multilabel.mean_ap(ap), 4),
            "prior_mAP": round(multilabel.mean_ap(prior), 4),
            "vad_mae": {k: round(float(v), 4) for k, v in zip(VAD, mae)},
            "macro_f1": round(
                float(f1[y.any(axis=0)].mean()) if y.any() else 0.0, 4
            ),  # over present categories
            "micro_f1": round(float(2 * tp.sum() / max(1, 2 * tp.sum() + fp.sum() + fn.sum())), 4),
            "ap": {c: (None if np.isnan(a) else round(float(a), 4)) for c, a in zip(CATEGORIES, ap)},
        }


def evaluate_persons(
    model: torch.nn.Module,
    meta: CheckpointMeta,
    images: EmoticImages,
    checkpoint: str = "",
    batch_size: int = 32,
) -> EmoticEvaluation:
    """Predict every person of ``images`` with a loaded model."""
    loader = DataLoader(PersonTensors(images, meta.mean, meta.std, augment=False), batch_size=batch_size)
    probs, vad = predict(model, loader)
    ann: EmoticAnnotations = images.ann
    thresholds = np.asarray(meta.thresholds if meta.thresholds else [0.5] * len(CATEGORIES))
    return EmoticEvaluation(checkpoint, ann.source, ann.categories, probs, ann.vad, vad, thresholds)


def write_cooccurrence(labels: np.ndarray, out: Path, name: str, title: str) -> np.ndarray:
    """``P(column | row)`` of ``(N, 26)`` 0/1 labels as ``<name>.csv`` and ``<name>.png``."""
    cond = multilabel.conditional_cooccurrence(multilabel.cooccurrence(labels))
    header = "row\\column," + ",".join(CATEGORIES)
    rows = [",".join([c, *(f"{v:.4f}" for v in row)]) for c, row in zip(CATEGORIES, cond)]
    (out / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n")
    plots.plot_cooccurrence(cond, CATEGORIES, out / f"{name}.png", title)
    return cond


def write_report(ev: EmoticEvaluation, out: str | Path, history: str | Path | None = None) -> Path:
    """Write the report files into ``out`` (see the module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(ev.summary(), indent=1))
    ap, prevalence = ev.ap, ev.targets.mean(axis=0)
    lines = ["category,AP,prevalence,threshold"] + [
        f"{c},{'' if np.isnan(a) else f'{a:.4f}'},{p:.4f},{t:.4f}"
        for c, a, p, t in zip(CATEGORIES, ap, prevalence, ev.thresholds)
    ]
    (out / "average_precision.csv").write_text("\n".join(lines) + "\n")
    plots.plot_average_precision(ap, prevalence, CATEGORIES, out / "average_precision.png")
    write_cooccurrence(ev.targets, out, "cooccurrence_true", "ground truth: P(column | row)")
    write_cooccurrence(ev.predicted, out, "cooccurrence_pred", "predicted: P(column | row)")
    if history is not None and Path(history).is_file():
        plots.plot_learning_curves(
            json.loads(Path(history).read_text()),
            out / "learning_curves.png",
            (("loss", "loss"), ("mAP", "mAP")),
        )
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``evaluate``: print the JSON summary line, write the report; returns the summary."""
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ckpt_name, ckpt = resolve(args.checkpoint)
    model, meta = load_emotic_checkpoint(ckpt)
    assert meta.context_size is not None
    images = EmoticImages(
        load_annotations(args.annotations, args.split),
        images_root=args.images,
        arrays_root=args.arrays,
        body_size=meta.input_size,
        context_size=meta.context_size,
    )
    ev = evaluate_persons(model, meta, images, str(ckpt), args.batch_size)
    summary = ev.summary()
    name = Path(args.annotations).stem + (f"-{args.split}" if args.annotations.endswith(".mat") else "")
    report = Path(args.report) if args.report else default_report(ckpt_name, name)
    write_report(ev, report, ckpt.parent / "history.json")
    return print_evaluation(summary, report, t0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="an EMOTIC .safetensors checkpoint or its run folder")
    p.add_argument("--annotations", required=True, help="test annotations: a CSV, or Annotations.mat")
    p.add_argument("--split", default="test", help="split of an Annotations.mat (train, val, test)")
    add_data_arguments(p)
    p.add_argument(
        "--report", default=None, help="report folder (default: ./report-<checkpoint>-<annotations>)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
