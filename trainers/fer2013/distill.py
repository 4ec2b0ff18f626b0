"""Knowledge distillation: soft targets from trained teacher models and the distillation loss
(Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", NIPS workshop 2014).

The teachers (one checkpoint or an ensemble) predict every training face once, before
training: the mean over teachers of their flip-averaged softmax probabilities. The student then
learns from ``(1 - w) * cross-entropy(label) + w * T^2 * KL(teacher_T || student_T)``, where
``_T`` are the distributions softened by temperature ``T``. Predicting on the unaugmented faces
(rather than on each augmented batch) costs one pass per teacher instead of one per step; the
augmentations used here (small shifts, zoom, rotation, flips, erasing) leave a face's
expression, and so the target, unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidaffect.errors import CheckpointError
from vidaffect.models.checkpoint import load_checkpoint
from vidaffect.models.meta import read_meta
from vidaffect.models.zoo import resolve_checkpoint
from vidaffect_trainers.common import read_cached, write_cached
from vidaffect_trainers.fer2013.predict import image_logits, probs_from_logits


def _cache_key(files: list[Path], images: np.ndarray, labels: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    h.update(np.ascontiguousarray(images).tobytes())
    h.update("\n".join(labels).encode())
    return h.hexdigest()


def teacher_probs(
    teachers: list[str],
    images: np.ndarray,
    labels: list[str],
    cache: Path | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Soft targets float32 ``(N, len(labels))`` for uint8 grayscale faces ``(N, H, W)``.

    Args:
        teachers: shipped model names (``resnet18``, ``default``) or ``.safetensors`` paths.
        images: the training faces, as loaded (each teacher resizes and normalises them itself).
        labels: the student's label names in its output order; each teacher's outputs are
            matched to them by name (case-insensitive).
        cache: an ``.npz`` file to reuse the targets from (a resumed run) when the teachers,
            faces and labels are the same; written after computing them.

    Raises:
        CheckpointError: a teacher cannot be found or loaded, is not grayscale, or lacks one of
            ``labels``.
    """
    files = [resolve_checkpoint(t) for t in teachers]
    key = _cache_key(files, images, labels)
    cached = None if cache is None else read_cached(cache, key, "probs")
    if cached is not None:
        return cached
    total = np.zeros((len(images), len(labels)), np.float64)
    for f in files:
        model, meta = load_checkpoint(f)
        index = {name.lower(): i for i, name in enumerate(meta.labels)}
        missing = [name for name in labels if name.lower() not in index]
        if missing:
            raise CheckpointError(f"teacher {f} has no output for {missing}; its labels are {meta.labels}")
        # the teacher's own softmax (T = 1), not its calibrated one: the distillation term
        # softens both sides with its own temperature
        probs = probs_from_logits(image_logits(model.float(), meta, images, batch_size, tta_flip=True))
        total += probs[:, [index[name.lower()] for name in labels]]
    out = (total / len(files)).astype(np.float32)
    out /= out.sum(1, keepdims=True)  # renormalise when a teacher has extra labels
    if cache is not None:
        write_cached(cache, key, "probs", out)
    return out


def describe_checkpoints(checkpoints: list[str]) -> list[dict[str, Any]]:
    """What a model's metadata records about each model it learnt from (a teacher, or the
    model it was fine-tuned from): the name or path as given (``checkpoint``), ``arch``, the
    file's ``sha256`` and that model's own ``val_top1``.

    Raises:
        CheckpointError: a checkpoint cannot be found or its header cannot be read.
    """
    out = []
    for t in checkpoints:
        f = resolve_checkpoint(t)
        meta = read_meta(f)
        out.append(
            {
                "checkpoint": t,
                "arch": meta.arch,
                "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                "val_top1": meta.metrics.get("val_top1"),
            }
        )
    return out


def other_split_checkpoints(checkpoints: list[str], val_split: str, train_size: int) -> list[str]:
    """The checkpoints (teachers, or the model fine-tuned from) whose metadata names another
    validation split or training-set size than this run's: they may have trained on this run's
    validation faces."""
    out = []
    for t in checkpoints:
        training = read_meta(resolve_checkpoint(t)).training
        if training.get("val_split") != val_split or training.get("train_size") != train_size:
            out.append(t)
    return out


def warn_other_split(role: str, checkpoints: list[str], val_split: str, train_size: int) -> None:
    """Print a warning for each checkpoint trained on another split than this run's."""
    for t in other_split_checkpoints(checkpoints, val_split, train_size):
        print(
            f"warning: {role} {t} was trained on another split than '{val_split}'; if it used "
            "this data, it may have seen this run's validation faces, which would inflate val top-1",
            flush=True,
        )


def distillation_loss(logits: torch.Tensor, target_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(teacher_T || student_T)``, averaged over the batch (a scalar).

    Args:
        logits: student logits float32 ``(B, C)``.
        target_probs: teacher probabilities float32 ``(B, C)`` (rows sum to 1).
        temperature: ``T >= 1`` softens both distributions; ``T^2`` keeps the gradient scale
            independent of ``T`` (Hinton et al.).
    """
    t = float(temperature)
    teacher_log = F.log_softmax(torch.log(target_probs.clamp_min(1e-8)) / t, dim=1)
    student_log = F.log_softmax(logits / t, dim=1)
    return F.kl_div(student_log, teacher_log, log_target=True, reduction="batchmean") * t * t
