"""A training run's progress in its folder: resume, per-epoch history, the best validation
score so far, and early stopping. Shared by the FER-2013 and EMOTIC trainers.

The folder (``--out``) holds ``last.pt`` (the full training state after the last finished
epoch, :func:`trainers.common.training_state`), ``history.json`` (one record per epoch) and
whatever the trainer saves as the best model when the score improves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from trainers.common import restore_state, save_state, training_state
from vidaffect.errors import CheckpointError


class RunProgress:
    """Resume and bookkeeping for one run folder.

    Args:
        out: the run folder (created by the trainer).
        model, optimizer, scheduler, gen, ema: what ``last.pt`` saves and restores.
        score: the validation score that selects the best epoch, higher is better, as printed
            (``"val top-1"``, ``"val mAP"``).
        state_key: the key of the best score in ``last.pt`` (``"best_acc"``, ``"best_map"``).
        patience: stop after this many epochs without a better score (0: never).
    """

    def __init__(self, out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator,
                 ema: AveragedModel | None, *, score: str, state_key: str, patience: int) -> None:
        self.out = out
        self._parts = (model, optimizer, scheduler, gen)
        self._ema = ema
        self.score, self.state_key, self.patience = score, state_key, patience
        self.epoch = 0  # finished epochs
        self.best = -1.0
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []

    @property
    def stopped(self) -> bool:
        """The run has had ``patience`` epochs without a better score."""
        return bool(self.patience) and self.bad_epochs >= self.patience

    def resume(self) -> bool:
        """Load ``last.pt`` if there is one; returns whether the run may go on (``False`` when it
        had already stopped early, which is printed).

        Raises:
            CheckpointError: ``last.pt`` belongs to another model or was trained without the
                weight average that is asked for now.
        """
        path = self.out / "last.pt"
        if not path.is_file():
            return True
        model, optimizer, scheduler, gen = self._parts
        try:
            state = restore_state(path, model, optimizer, scheduler, gen, self._ema)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit this model ({type(exc).__name__}); "
                                  "use another --out, or --restart to start over") from None
        self.epoch, self.best, self.bad_epochs = state["epoch"], state[self.state_key], state["bad_epochs"]
        self.history = state["history"]
        print(f"resumed {self.out} at epoch {self.epoch} (best {self.score} {self.best:.4f})", flush=True)
        if self.stopped:
            print(f"{self.out} already stopped early ({self.bad_epochs} epochs without gain); "
                  "--restart to train again", flush=True)
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
        model, optimizer, scheduler, gen = self._parts
        save_state(self.out, training_state(model, optimizer, scheduler, gen, self.epoch, self.history,
                                            self._ema, **{self.state_key: self.best},
                                            bad_epochs=self.bad_epochs))
        (self.out / "history.json").write_text(json.dumps(self.history, indent=1))
        print(json.dumps(self.history[-1]), flush=True)
        if self.stopped:
            print(f"early stop: no {self.score} gain for {self.bad_epochs} epochs", flush=True)
        return self.stopped
