"""Several trained FER networks as one model (``arch: ensemble``): a deep ensemble.

The members' log-softmax outputs are averaged (the log of the geometric mean of their
probabilities; Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty Estimation
using Deep Ensembles", NeurIPS 2017, average the probabilities, which ranks classes almost
the same). The average is returned as the model's logits, so the checkpoint's calibration
temperature and the ``fer`` plugin apply to it unchanged. Members may have been trained with
different input normalisations: each gets its own affine map of the ensemble's normalised
input. ``vidaffect ensemble`` builds one from trained checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidaffect.models.registry import create_model, register_model


class Ensemble(nn.Module):
    """Mean log-softmax of ``members``.

    Args:
        members: networks mapping float32 ``(B, C, H, W)`` to logits ``(B, K)``.
        scales, shifts: per member, the input it gets is ``x * scale + shift`` (from the
            ensemble's normalisation to its own).

    Input float32 ``(B, C, H, W)`` normalised as the checkpoint's metadata says; output float32
    ``(B, K)`` log-probabilities (use them as logits).
    """

    def __init__(self, members: list[nn.Module], scales: list[float], shifts: list[float]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.scales, self.shifts = list(scales), list(shifts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [
            F.log_softmax(m(x if (a, b) == (1.0, 0.0) else x * a + b).float(), dim=1)
            for m, a, b in zip(self.members, self.scales, self.shifts)
        ]
        return torch.stack(outs).mean(0)


@register_model("ensemble")
def ensemble(num_classes: int = 7, in_channels: int = 1, members: Any = ()) -> nn.Module:
    """A deep ensemble; ``members`` is a list of ``{"arch", "arch_kwargs", "scale", "shift"}``
    (registered architectures other than ``ensemble``; scale and shift as in :class:`Ensemble`).

    Raises:
        ValueError: no member, or a member that is itself an ensemble.
    """
    members = list(members)
    if not members:
        raise ValueError("an ensemble needs at least one member")
    if any(m["arch"] == "ensemble" for m in members):
        raise ValueError("an ensemble member cannot be an ensemble")
    nets = [create_model(m["arch"], num_classes, in_channels, **m.get("arch_kwargs", {})) for m in members]
    return Ensemble(
        nets, [float(m.get("scale", 1.0)) for m in members], [float(m.get("shift", 0.0)) for m in members]
    )
