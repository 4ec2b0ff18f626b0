"""Pieces shared by the trainers: options, seeding, optimiser, schedule, run state files."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def parse_arch_options(items: list[str]) -> dict[str, Any]:
    """``["width=32", "stem_stride=1"]`` -> ``{"width": 32, "stem_stride": 1}`` (JSON values)."""
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


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
