"""A model's training run in its folder: optimiser, schedule and weight average, resume,
per-epoch history, the best validation score so far, and early stopping. Shared by the
FER-2013 and EMOTIC trainers.

The folder (``--out``) holds ``last.pt`` (the full training state after the last finished
epoch, :func:`training_state`), ``history.json`` (one record per epoch) and
whatever the trainer saves as the best model when the score improves.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from vidaffect.errors import CheckpointError
from vidaffect_trainers.common import lr_lambda, make_ema, make_optimizer


def save_state(out: Path, state: dict[str, Any]) -> Path:
    """Write the full training state to ``out/last.pt`` atomically (``torch.save`` of tensors,
    numbers and strings only, so it loads with ``weights_only=True``)."""
    tmp = out / "last.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(out / "last.pt")
    return out / "last.pt"


def training_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    epoch: int,
    history: list[dict[str, Any]],
    ema: AveragedModel | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Everything needed to resume after ``epoch`` (``extra``: best score, epochs without gain)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "history": json.dumps(history),
        "torch_rng": torch.get_rng_state(),
        "gen_rng": gen.get_state(),
        **extra,
    }
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


def restore_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    gen: torch.Generator,
    ema: AveragedModel | None = None,
) -> dict[str, Any]:
    """Load ``last.pt`` (``weights_only=True``) into the model, optimiser, schedule, random
    generators and weight average; returns the state with ``history`` decoded, for the epoch
    and extras.

    Raises:
        CheckpointError: ``ema`` is given but the run was trained without one.
    """
    state = torch.load(path, weights_only=True, map_location="cpu")  # loaded onto the model's device
    if ema is not None:
        if "ema" not in state:
            raise CheckpointError(
                f"{path} was trained without --ema; resume without it, "
                "or start a new run (another --out, or --restart)"
            )
        ema.load_state_dict(state["ema"])
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    gen.set_state(state["gen_rng"])
    state["history"] = json.loads(state["history"])
    return state


class TrainingRun:
    """One model's training run in its folder: the optimiser, the learning-rate schedule, the
    optional weight average, resume, history, the best score and early stopping.

    Args:
        out: the run folder (created by the trainer).
        model: the model being trained.
        gen: the data loader's random generator (saved and restored with the run).
        args: the trainer's parsed options (:func:`vidaffect_trainers.common.add_run_arguments`):
            ``optimizer``, ``lr``, ``weight_decay``, ``epochs``, ``warmup_epochs``, ``ema``,
            ``patience``.
        steps_per_epoch: optimiser steps in one epoch (batches of the training loader).
        score: the validation score that selects the best epoch, higher is better, as printed
            (``"val top-1"``, ``"val mAP"``).
        state_key: the key of the best score in ``last.pt`` (``"best_acc"``, ``"best_map"``).

    Raises:
        ValueError: an unknown optimiser or an EMA decay outside [0, 1).
    """

    def __init__(
        self,
        out: Path,
        model: torch.nn.Module,
        gen: torch.Generator,
        args: argparse.Namespace,
        steps_per_epoch: int,
        *,
        score: str,
        state_key: str,
    ) -> None:
        self.out, self.model, self._gen = out, model, gen
        self.optimizer = make_optimizer(args.optimizer, model, args.lr, args.weight_decay)
        total = max(1, args.epochs * steps_per_epoch)
        warmup = min(total // 10, args.warmup_epochs * steps_per_epoch) or 1
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_lambda(s, warmup, total)
        )
        self.ema = make_ema(model, args.ema)
        self.score, self.state_key, self.patience = score, state_key, args.patience
        self.epoch = 0  # finished epochs
        self.best = -1.0
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []

    def step(self, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss`` (a scalar), then the schedule and the weight average."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    @property
    def selected(self) -> torch.nn.Module:
        """The weights that are validated for selection and saved as the best: the weight
        average with ``--ema``, else the model itself."""
        return self.model if self.ema is None else self.ema.module

    @property
    def lr(self) -> float:
        """The current learning rate."""
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def stopped(self) -> bool:
        """The run has had ``patience`` epochs without a better score."""
        return bool(self.patience) and self.bad_epochs >= self.patience

    def resume(self) -> bool:
        """Load ``last.pt`` if there is one; returns whether the run may go on (``False`` when it
        had already stopped early, which is printed).

        Raises:
            CheckpointError: ``last.pt`` belongs to another model, cannot be read, or was
                trained without the weight average that is asked for now.
        """
        path = self.out / "last.pt"
        if not path.is_file():
            return True
        try:
            state = restore_state(path, self.model, self.optimizer, self.scheduler, self._gen, self.ema)
        except (RuntimeError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise CheckpointError(
                f"{path} does not fit this model or cannot be read "
                f"({type(exc).__name__}: {reason}); "
                "use another --out, or --restart to start over"
            ) from None
        self.epoch, self.best, self.bad_epochs = state["epoch"], state[self.state_key], state["bad_epochs"]
        self.history = state["history"]
        print(f"resumed {self.out} at epoch {self.epoch} (best {self.score} {self.best:.4f})", flush=True)
        if self.stopped:
            print(
                f"{self.out} already stopped early ({self.bad_epochs} epochs without gain); "
                "--restart to train again",
                flush=True,
            )
        return not self.stopped

    def add_epoch(self, record: dict[str, Any], value: float) -> bool:
        """Count a finished epoch with its history ``record`` and validation score ``value``;
        returns whether it is the best so far (the trainer then saves its best model)."""
        self.epoch += 1
        self.history.append(record)
        if value > self.best:
            self.best, self.bad_epochs = value, 0
            return True
        self.bad_epochs += 1
        return False

    def save(self) -> bool:
        """Write ``last.pt`` and ``history.json`` and print the last record as a JSON line;
        returns whether to stop early (printed)."""
        save_state(
            self.out,
            training_state(
                self.model,
                self.optimizer,
                self.scheduler,
                self._gen,
                self.epoch,
                self.history,
                self.ema,
                **{self.state_key: self.best},
                bad_epochs=self.bad_epochs,
            ),
        )
        (self.out / "history.json").write_text(json.dumps(self.history, indent=1))
        print(json.dumps(self.history[-1]), flush=True)
        if self.stopped:
            print(f"early stop: no {self.score} gain for {self.bad_epochs} epochs", flush=True)
        return self.stopped
