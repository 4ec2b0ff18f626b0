"""Pieces shared by the trainers: seeding, optimiser, schedule, weight averaging, run state
files, evaluation output (command-line options are in :mod:`trainers.options`)."""

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

from vidaffect.errors import CheckpointError


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save_state(out: Path, state: dict[str, Any]) -> Path:
    """Write the full training state to ``out/last.pt`` atomically (``torch.save`` of tensors,
    numbers and strings only, so it loads with ``weights_only=True``)."""
    tmp = out / "last.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(out / "last.pt")
    return out / "last.pt"


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator, epoch: int,
                   history: list[dict[str, Any]], ema: AveragedModel | None = None,
                   **extra: Any) -> dict[str, Any]:
    """Everything needed to resume after ``epoch`` (``extra``: best score, epochs without gain)."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "epoch": epoch, "history": json.dumps(history),
             "torch_rng": torch.get_rng_state(), "gen_rng": gen.get_state(), **extra}
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


def restore_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator,
                  ema: AveragedModel | None = None) -> dict[str, Any]:
    """Load ``last.pt`` (``weights_only=True``) into the model, optimiser, schedule, random
    generators and weight average; returns the state with ``history`` decoded, for the epoch
    and extras.

    Raises:
        CheckpointError: ``ema`` is given but the run was trained without one.
    """
    state = torch.load(path, weights_only=True)
    if ema is not None:
        if "ema" not in state:
            raise CheckpointError(f"{path} was trained without --ema; resume without it, "
                                  "or start a new run (another --out, or --restart)")
        ema.load_state_dict(state["ema"])
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    gen.set_state(state["gen_rng"])
    state["history"] = json.loads(state["history"])
    return state


def print_evaluation(summary: dict[str, Any], report: Path, started: float) -> dict[str, Any]:
    """An ``evaluate`` command's output: the summary as one JSON line on stdout, where the
    report went (and how long it took, from ``time.perf_counter()`` at ``started``) on stderr."""
    print(json.dumps(summary), flush=True)
    print(f"report: {report} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return summary
