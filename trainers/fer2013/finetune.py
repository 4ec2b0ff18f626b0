"""Where a FER-2013 run starts: random weights (``--arch``) or a trained model (``--init``).

A run started with ``--init CHECKPOINT`` keeps that checkpoint's architecture, options,
normalisation and classes, and writes ``init.json`` to its folder (the checkpoint's metadata
and :func:`~vidaffect_trainers.fer2013.distill.describe_checkpoints` entry). A resumed run reads them
from there, so it needs neither ``--init`` nor the checkpoint file again, and cannot drift to
another normalisation halfway.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidaffect.errors import CheckpointError
from vidaffect.models.checkpoint import CheckpointMeta, load_checkpoint
from vidaffect.models.zoo import resolve_checkpoint
from vidaffect_trainers.fer2013.data import FaceSet
from vidaffect_trainers.fer2013.distill import describe_checkpoints

INIT_RECORD = "init.json"


def check_arch_arguments(args: argparse.Namespace, out: Path) -> None:
    """Fail early (before any data is read) on architecture options that cannot work.

    Raises:
        ValueError: neither ``--arch`` nor ``--init`` (nor a fine-tuning run in ``out`` to
            resume), or ``--arch-opt`` for a fine-tuning run (the architecture is the checkpoint's).
    """
    resumable = not args.restart and (out / INIT_RECORD).is_file()
    if args.arch_opt and (args.init or resumable):
        raise ValueError(
            "--arch-opt cannot change the architecture of a fine-tuning run (it is the --init model's)"
        )
    if not args.init and not args.arch and not resumable:
        raise ValueError("--arch is required (or --init CHECKPOINT, to fine-tune a trained model)")


@dataclass
class StartPoint:
    """A fine-tuning run's origin.

    Attributes:
        meta: the ``--init`` checkpoint's metadata (architecture, options, labels, mean/std).
        description: its entry for the run's metadata (``training.init``).
        model: its weights (train mode, float32) for a new run; ``None`` when resuming, as the
            weights then come from ``last.pt``.
    """

    meta: CheckpointMeta
    description: dict[str, Any]
    model: torch.nn.Module | None


def starting_point(args: argparse.Namespace, out: Path, resuming: bool) -> StartPoint | None:
    """The run's :class:`StartPoint`, or ``None`` for a run from random weights.

    A new run with ``--init`` loads the checkpoint and records it in ``out/init.json``; a
    resumed run that has that record uses it (and says so when ``--init`` names another file).

    Raises:
        CheckpointError: the ``--init`` checkpoint cannot be found or loaded, or is not a
            grayscale multiclass face model.
        ValueError: ``--arch`` names another architecture than the run's, or ``--init`` is
            given to resume a run that started from random weights.
    """
    record = out / INIT_RECORD
    if resuming and record.is_file():
        saved = json.loads(record.read_text())
        point = StartPoint(CheckpointMeta.from_json(json.dumps(saved["meta"])), saved["init"], None)
        if args.init and describe_checkpoints([args.init])[0]["sha256"] != point.description["sha256"]:
            print(
                f"note: resuming a run that started from {point.description['checkpoint']}; "
                f"--init {args.init} is ignored (--restart to start over from it)",
                flush=True,
            )
    elif resuming and args.init:
        raise ValueError(
            f"{out} holds a run that started from random weights; "
            "resume it without --init, or --restart to start over from the --init model"
        )
    elif args.init:
        model, meta = load_checkpoint(resolve_checkpoint(args.init))
        if meta.task != "multiclass" or meta.in_channels != 1:
            raise CheckpointError(
                f"--init {args.init} is a {meta.task} model with {meta.in_channels} "
                "input channels; the FER trainer fine-tunes grayscale multiclass models"
            )
        point = StartPoint(meta, describe_checkpoints([args.init])[0], model.train())
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": json.loads(meta.to_json()), "init": point.description}, indent=1))
        tmp.replace(record)
    else:
        record.unlink(missing_ok=True)  # a --restart from random weights
        return None
    if args.arch and args.arch != point.meta.arch:
        raise ValueError(
            f"--arch {args.arch} does not match the --init model "
            f"{point.description['checkpoint']}, which is {point.meta.arch}"
        )
    return point


def align_classes(faces: FaceSet, point: StartPoint) -> FaceSet:
    """``faces`` with their labels re-indexed to the model's classes (matched by name,
    case-insensitive); the model's classes need not all be present.

    Raises:
        CheckpointError: a class of ``faces`` (one with images) is not among the model's, or
            the images are not the model's input size.
    """
    labels = list(point.meta.labels)
    size = tuple(faces.images.shape[1:])
    if size != tuple(point.meta.input_size):
        raise CheckpointError(
            f"the --init model {point.description['checkpoint']} takes "
            f"{point.meta.input_size[0]}x{point.meta.input_size[1]} faces; this data "
            f"has {size[0]}x{size[1]}"
        )
    index = {name.lower(): i for i, name in enumerate(labels)}
    present = [faces.label_names[k] for k in np.unique(faces.labels)]
    extra = [name for name in present if name.lower() not in index]
    if extra:
        raise CheckpointError(
            f"class folder(s) {extra} are not among the classes of the --init model "
            f"{point.description['checkpoint']} ({labels}); new classes need a model "
            "trained from scratch (--arch)"
        )
    remap = np.array([index.get(name.lower(), -1) for name in faces.label_names], np.int64)
    return dataclasses.replace(faces, labels=remap[faces.labels], label_names=tuple(labels))
