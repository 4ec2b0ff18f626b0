"""``vidaffect calibrate``: fit a FER checkpoint's softmax temperature on its validation split.

    vidaffect calibrate --checkpoint RUN_OR_FILE [--data DIR] [--out FILE]

Temperature scaling (Guo et al., ICML 2017; :mod:`vidaffect_trainers.calibration`): the
temperature that minimises the negative log-likelihood of the validation faces goes into the
checkpoint's metadata (``temperature``), with the validation expected calibration error
before and after (``val_ece_uncalibrated``, ``val_ece``); top-1 does not change. The
validation split is the checkpoint's own (``training.val_split``, e.g. "stratified 0.1 of
train, seed 0"), rebuilt from the training data, so no face it was trained on is used.
Training runs calibrate their ``best.safetensors`` themselves when they finish.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidaffect.models.checkpoint import load_checkpoint, save_checkpoint
from vidaffect_trainers.calibration import expected_calibration_error, fit_temperature, softmax
from vidaffect_trainers.fer2013.data import load, stratified_split
from vidaffect_trainers.fer2013.evaluate import default_data, map_labels
from vidaffect_trainers.fer2013.predict import image_logits
from vidaffect_trainers.profiling import resolve

_SPLIT = re.compile(r"stratified ([0-9.]+) of train, seed (-?\d+)")


def calibrate_file(
    path: Path, out: Path, images: np.ndarray, labels: np.ndarray, batch_size: int = 256
) -> dict[str, float]:
    """Fit the temperature of the checkpoint at ``path`` on uint8 faces ``(N, H, W)`` with
    int labels ``(N,)`` (indices into its labels) and write it, with the ECE before and after,
    to ``out`` (may be ``path``), keeping fp16 weights fp16. Returns the figures."""
    model, meta = load_checkpoint(path)
    half = _stored_half(path)
    logits = image_logits(model, meta, images, batch_size)[0]
    temperature = fit_temperature(logits, labels)
    figures = {
        "temperature": round(temperature, 4),
        "val_ece_uncalibrated": round(expected_calibration_error(softmax(logits), labels), 4),
        "val_ece": round(expected_calibration_error(softmax(logits, temperature), labels), 4),
    }
    meta.temperature = figures["temperature"]
    meta.metrics.update(val_ece=figures["val_ece"], val_ece_uncalibrated=figures["val_ece_uncalibrated"])
    meta.metrics.setdefault("val_top1", float((logits.argmax(1) == labels).mean()))  # e.g. an ensemble
    save_checkpoint(out, model, meta, dtype=torch.float16 if half else None)
    return figures


def describe_calibration(figures: dict[str, float]) -> str:
    """``temperature T, validation ECE a -> b`` for the figures :func:`calibrate_file` returns."""
    return (
        f"temperature {figures['temperature']:.3f}, validation ECE "
        f"{figures['val_ece_uncalibrated']:.4f} -> {figures['val_ece']:.4f}"
    )


def _stored_half(path: Path) -> bool:
    """Whether the file's weights are stored in fp16 (a shipped checkpoint)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())


def validation_faces(meta_training: dict[str, Any], data: Path, frac: float, seed: int) -> tuple[Any, str]:
    """The checkpoint's validation faces (its ``val_split`` when recorded, else ``frac`` and
    ``seed``) and a description of the split."""
    match = _SPLIT.fullmatch(str(meta_training.get("val_split", "")))
    if match:
        frac, seed = float(match.group(1)), int(match.group(2))
    full = load(data, "train")
    _, val_idx = stratified_split(full.labels, frac, seed)
    return full.subset(val_idx), f"stratified {frac:g} of train, seed {seed}"


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``calibrate``: print the figures; returns them."""
    torch.set_num_threads(args.threads)
    name, ckpt = resolve(args.checkpoint)
    _, meta = load_checkpoint(ckpt)
    faces, split = validation_faces(
        meta.training, Path(args.data) if args.data else default_data(), args.val_frac, args.seed
    )
    out = Path(args.out) if args.out else ckpt
    figures = calibrate_file(ckpt, out, faces.images, map_labels(faces, meta.labels))
    print(f"{out}: {describe_calibration(figures)} ({len(faces)} faces, {split})")
    return figures


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", required=True, help="a .safetensors checkpoint, a run folder or a shipped name"
    )
    p.add_argument(
        "--data",
        default=None,
        help="FER-2013 folder or CSV with the training split (default: $VIDAFFECT_DATA/fer2013)",
    )
    p.add_argument("--out", default=None, help="write here (default: over the checkpoint)")
    p.add_argument(
        "--val-frac", type=float, default=0.1, help="validation share, when the checkpoint records none"
    )
    p.add_argument("--seed", type=int, default=0, help="split seed, when the checkpoint records none")
    p.add_argument("--threads", type=int, default=2)
