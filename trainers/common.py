"""Pieces shared by the trainers: seeding, optimiser, schedule, weight averaging, evaluation
output. The run state files are in :mod:`vidaffect_trainers.run`, command-line options in
:mod:`vidaffect_trainers.options`."""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel


def read_cached(path: Path, key: str, name: str) -> np.ndarray | None:
    """The array ``name`` kept in the ``.npz`` file ``path`` by :func:`write_cached` under
    ``key``, or None when the file is missing or was written for another key."""
    if not path.is_file():
        return None
    with np.load(path) as z:
        return np.asarray(z[name]) if str(z["key"]) == key else None


def write_cached(path: Path, key: str, name: str, value: np.ndarray) -> None:
    """Keep ``value`` as the array ``name`` of the ``.npz`` file ``path`` under ``key``, written whole under a
    temporary name and then renamed (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{name: value, "key": np.array(key)})
    tmp.replace(path)


def lr_lambda(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to zero (Loshchilov & Hutter, SGDR, ICLR 2017)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(name: str, model: torch.nn.Module, lr: float, wd: float) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    if name == "adam":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (BatchNorm statistics),
    ``avg = d * avg + (1 - d) * weights`` after each :meth:`~AveragedModel.update_parameters`
    (Polyak & Juditsky 1992; as used by Tan & Le, EfficientNet, ICML 2019). ``None`` when
    ``decay`` is 0 (off).

    ``d`` warms up as in TensorFlow's ``ExponentialMovingAverage(num_updates=t)``:
    ``d = min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so the average is not dragged
    back to the random initial weights for the first few thousand steps. Integer buffers
    (BatchNorm's batch counters) take the model's value.

    Raises:
        ValueError: ``decay`` outside [0, 1).
    """
    if not 0 <= decay < 1:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
    if decay == 0:
        return None

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        t = int(n_averaged)
        d = min(decay, (1 + t) / (10 + t))
        for avg, cur in zip(averaged, current, strict=True):
            if avg.is_floating_point():
                avg.lerp_(cur, 1 - d)
            else:
                avg.copy_(cur)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


# torch 2.14.1's CPU backward of very narrow convolutions in channels_last corrupts the heap on
# AVX2-only CPUs (AMD EPYC without AVX-512: "free(): invalid next size", then SIGABRT/SIGSEGV):
# a ResNet-18 of width 4 crashes within three backward passes, widths 8 and up do not. Models
# with such a convolution train in the default (contiguous) memory format instead.
NARROWEST_CHANNELS_LAST_CONV = 8


def cpu_memory_format(model: torch.nn.Module) -> torch.memory_format:
    """The memory format to train and validate ``model`` in: ``torch.channels_last`` (faster on
    CPUs, see ``benchmarks.train_speed``) unless a 2-D convolution has fewer than
    :data:`NARROWEST_CHANNELS_LAST_CONV` output channels, or fewer input channels than that
    other than the image's own (the first convolution's input: 1 gray or 3 RGB), in which case
    ``torch.contiguous_format`` (torch 2.14.1 crashes in that backward on AVX2-only CPUs)."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        return torch.channels_last
    image_channels = convs[0].in_channels
    for conv in convs:
        narrow_in = conv.in_channels < NARROWEST_CHANNELS_LAST_CONV and conv.in_channels != image_channels
        if conv.out_channels < NARROWEST_CHANNELS_LAST_CONV or narrow_in:
            return torch.contiguous_format
    return torch.channels_last


def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (x86 ``avx512_bf16`` or ``amx_bf16``, read
    from ``/proc/cpuinfo``; False where that file is missing). There, bfloat16 autocast trains
    the VGG 1.6x as fast as float32 but the shipped ResNet-18 slower (0.84x):
    ``python -m benchmarks.train_speed --bf16`` times both on the machine at hand."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def use_amp(requested: bool | None, device: torch.device) -> bool:
    """Whether to train under bfloat16 autocast: as ``requested`` (``--amp`` / ``--no-amp``), else
    on a GPU, and on a CPU that computes bfloat16 natively (:func:`cpu_has_bf16`)."""
    if requested is not None:
        return requested
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def print_evaluation(summary: dict[str, Any], report: Path, started: float) -> dict[str, Any]:
    """An ``evaluate`` command's output: the summary as one JSON line on stdout, where the
    report went (and how long it took, from ``time.perf_counter()`` at ``started``) on stderr."""
    print(json.dumps(summary), flush=True)
    print(f"report: {report} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return summary
