"""Evaluate a FER checkpoint on a labelled face set: metrics as one JSON line, plus a report.

The data's class names are matched to the checkpoint's labels by name (case-insensitive),
so a checkpoint whose label order differs from the data's is scored correctly. The report
folder holds ``metrics.json``, ``classification_report.txt``, ``confusion_matrix.{png,csv}``,
``learning_curves.png`` (when the run folder has ``history.json``) and ``gallery.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidaffect.errors import CheckpointError
from vidaffect.models.checkpoint import CheckpointMeta, load_checkpoint
from vidaffect.sample_data import data_dir
from vidaffect_trainers import metrics, plots
from vidaffect_trainers.calibration import expected_calibration_error
from vidaffect_trainers.common import print_evaluation
from vidaffect_trainers.fer2013.data import FaceSet, load
from vidaffect_trainers.fer2013.predict import image_logits, probs_from_logits
from vidaffect_trainers.profiling import default_report, resolve


def default_data() -> Path:
    """``$VIDAFFECT_DATA/fer2013`` (see :func:`vidaffect.sample_data.data_dir`)."""
    return data_dir() / "fer2013"


def dataset_name(data: str | Path, split: str) -> str:
    """A short name for report folders: ``fer2013-test``, ``fer2013-private``, ``myfaces``."""
    data = Path(data)
    if data.suffix.lower() == ".csv":
        return f"{data.stem}-{split}"
    if (data / split).is_dir():
        return f"{data.name}-{split}"
    return data.name


def map_labels(faces: FaceSet, model_labels: list[str]) -> np.ndarray:
    """The faces' labels as int64 ``(N,)`` indices into ``model_labels``, matched by name.

    Raises:
        CheckpointError: a class present in the data is not among the model's labels.
    """
    index = {name.lower(): i for i, name in enumerate(model_labels)}
    counts = faces.class_counts()
    unknown = [n for n, c in zip(faces.label_names, counts) if c and n.lower() not in index]
    if unknown:
        raise CheckpointError(
            f"data class(es) {unknown} from {faces.source} are unknown to the model, "
            f"whose labels are {model_labels}"
        )
    lut = np.array([index.get(n.lower(), -1) for n in faces.label_names], np.int64)
    return lut[faces.labels]


@dataclass
class Evaluation:
    """Predictions of one checkpoint on one face set.

    Attributes:
        labels: the model's class names (index order of ``y_true`` / ``probs`` columns).
        images: uint8 ``(N, H, W)`` faces as loaded.
        y_true: int64 ``(N,)`` true classes, indices into ``labels``.
        probs: float32 ``(N, C)`` softmax probabilities at the checkpoint's ``temperature``.
        temperature: the checkpoint's calibrated softmax temperature (1.0: not calibrated).
        ece_uncalibrated: the expected calibration error of the plain softmax (T = 1).
    """

    checkpoint: str
    data: str
    labels: list[str]
    images: np.ndarray
    y_true: np.ndarray
    probs: np.ndarray
    tta_flip: bool
    temperature: float = 1.0
    ece_uncalibrated: float | None = None

    @property
    def y_pred(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def confusion(self) -> np.ndarray:
        return metrics.confusion_matrix(self.y_true, self.y_pred, len(self.labels))

    def summary(self) -> dict[str, Any]:
        """The JSON line: checkpoint, data, n, top1, macro_f1, per_class, tta_flip, and the
        calibration: temperature, ece (at it) and ece_uncalibrated (plain softmax)."""
        cm = self.confusion
        return {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "n": int(len(self.y_true)),
            "top1": metrics.accuracy(cm),
            "macro_f1": metrics.macro_f1(cm),
            "per_class": metrics.per_class(cm, self.labels),
            "tta_flip": self.tta_flip,
            "temperature": self.temperature,
            "ece": expected_calibration_error(self.probs, self.y_true) if len(self.y_true) else None,
            "ece_uncalibrated": self.ece_uncalibrated,
        }


def evaluate_faces(
    model: nn.Module,
    meta: CheckpointMeta,
    faces: FaceSet,
    checkpoint: str = "",
    batch_size: int = 256,
    tta_flip: bool = False,
) -> Evaluation:
    """Predict ``faces`` with a loaded model (see :func:`map_labels` for the errors raised)."""
    y_true = map_labels(faces, meta.labels)
    logits = image_logits(model, meta, faces.images, batch_size, tta_flip)
    probs = probs_from_logits(logits, meta.temperature)
    ece_t1 = expected_calibration_error(probs_from_logits(logits), y_true) if len(y_true) else None
    return Evaluation(
        checkpoint,
        faces.source,
        list(meta.labels),
        faces.images,
        y_true,
        probs,
        tta_flip,
        meta.temperature,
        ece_t1,
    )


def write_report(ev: Evaluation, out: str | Path, history: str | Path | None = None) -> Path:
    """Write the report files into ``out``; learning curves only if ``history`` exists."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cm = ev.confusion
    full = {**ev.summary(), "labels": ev.labels, "confusion_matrix": cm.tolist()}
    (out / "metrics.json").write_text(json.dumps(full, indent=1))
    (out / "classification_report.txt").write_text(metrics.classification_report(cm, ev.labels))
    header = "true\\pred," + ",".join(ev.labels)
    rows = [",".join([name, *map(str, row)]) for name, row in zip(ev.labels, cm)]
    (out / "confusion_matrix.csv").write_text("\n".join([header, *rows]) + "\n")
    plots.plot_confusion(cm, ev.labels, out / "confusion_matrix.png")
    if history is not None and Path(history).is_file():
        curves = json.loads(Path(history).read_text())
        plots.plot_learning_curves(curves, out / "learning_curves.png")
    else:
        print(f"note: no history.json at {history}; learning_curves.png skipped", file=sys.stderr)
    conf = ev.probs.max(1) if len(ev.probs) else np.zeros(0)
    plots.plot_gallery(ev.images, ev.y_true, ev.y_pred, conf, ev.labels, out / "gallery.png")
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``evaluate``: print the JSON summary line, write the report; returns the summary."""
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    name, ckpt = resolve(args.checkpoint)
    model, meta = load_checkpoint(ckpt)
    data = Path(args.data) if args.data else default_data()
    faces = load(data, args.split)
    ev = evaluate_faces(model, meta, faces, str(ckpt), args.batch_size, args.tta_flip)
    summary = ev.summary()
    report = Path(args.report) if args.report else default_report(name, dataset_name(data, args.split))
    write_report(ev, report, ckpt.parent / "history.json")
    return print_evaluation(summary, report, t0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a .safetensors checkpoint, a run folder, or a shipped model (default, resnet18, alexnet)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="FER-2013 folder (train/, test/), fer2013.csv, or class-named folder "
        "(default: $VIDAFFECT_DATA/fer2013, VIDAFFECT_DATA=../shared/data)",
    )
    p.add_argument("--split", default="test", help="train, test, or private (CSV PrivateTest)")
    p.add_argument("--report", default=None, help="report folder (default: ./report-<checkpoint>-<dataset>)")
    p.add_argument("--tta-flip", action="store_true", help="average with the mirrored face")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
