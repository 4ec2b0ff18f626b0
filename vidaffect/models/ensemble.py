"""Several trained FER networks as one model (``arch: ensemble``): a deep ensemble.

The members' log-softmax outputs are averaged (the log of the geometric mean of their
probabilities; Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty Estimation
using Deep Ensembles", NeurIPS 2017, average the probabilities, which ranks classes almost
the same). The average is returned as the model's logits, so the checkpoint's calibration
temperature and the ``fer`` plugin apply to it unchanged. Members may have been trained with
different input normalisations: each gets its own affine map of the ensemble's normalised
input. ``vidaffect ensemble`` builds one from trained checkpoints.

A member may refer to a shipped model instead of carrying its weights (``"shipped": NAME``
with the file's ``"sha256"``): the ensemble then loads that file from
:mod:`vidaffect.models.zoo` and leaves its weights out of its own state dict, so a shipped
ensemble of shipped models costs no second copy. Loading fails, naming the member, when the
installed file is not the one the ensemble was built and calibrated with.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidaffect.errors import CheckpointError
from vidaffect.models.registry import create_model, register_model


class Ensemble(nn.Module):
    """Mean log-softmax of ``members``.

    Args:
        members: networks mapping float32 ``(B, C, H, W)`` to logits ``(B, K)``.
        scales, shifts: per member, the input it gets is ``x * scale + shift`` (from the
            ensemble's normalisation to its own).

        referenced: indices of members whose weights come from a shipped file: their keys are
            left out of :meth:`state_dict` and kept as they are by :meth:`load_state_dict`.

    Input float32 ``(B, C, H, W)`` normalised as the checkpoint's metadata says; output float32
    ``(B, K)`` log-probabilities (use them as logits).
    """

    def __init__(
        self,
        members: list[nn.Module],
        scales: list[float],
        shifts: list[float],
        referenced: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.scales, self.shifts = list(scales), list(shifts)
        self.referenced = referenced
        self.register_state_dict_post_hook(_drop_referenced)
        self.register_load_state_dict_pre_hook(_keep_referenced)

    def referenced_keys(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The state of the referenced members, under their keys in the ensemble's state."""
        return {
            f"{prefix}members.{i}.{k}": v
            for i in sorted(self.referenced)
            for k, v in self.members[i].state_dict().items()
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [
            F.log_softmax(m(x if (a, b) == (1.0, 0.0) else x * a + b).float(), dim=1)
            for m, a, b in zip(self.members, self.scales, self.shifts)
        ]
        return torch.stack(outs).mean(0)


def _drop_referenced(module: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in module.referenced_keys(prefix):  # type: ignore[operator]
        state.pop(key, None)


def _keep_referenced(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    for key, value in module.referenced_keys(prefix).items():  # type: ignore[operator]
        state.setdefault(key, value)


def shipped_member_state(name: str, sha256: str) -> dict[str, torch.Tensor]:
    """The float32 weights of the shipped model ``name``, checked against ``sha256``.

    Raises:
        CheckpointError: no such shipped model, or its file is not the one with that hash.
    """
    from safetensors.torch import load_file

    from vidaffect.models.zoo import shipped_models

    path = shipped_models().get(name)
    if path is None:
        raise CheckpointError(f"ensemble member {name!r}: no shipped model of that name is installed")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise CheckpointError(
            f"ensemble member {name!r}: the installed {path.name} (sha256 {digest[:12]}) is not the file "
            f"the ensemble was built and calibrated with ({sha256[:12]}); rebuild it with `vidaffect ensemble`"
        )
    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}


@register_model("ensemble")
def ensemble(num_classes: int = 7, in_channels: int = 1, members: Any = ()) -> nn.Module:
    """A deep ensemble; ``members`` is a list of ``{"arch", "arch_kwargs", "scale", "shift"}``
    (registered architectures other than ``ensemble``; scale and shift as in :class:`Ensemble`),
    plus ``"shipped"`` and ``"sha256"`` for a member whose weights are a shipped file.

    Raises:
        ValueError: no member, or a member that is itself an ensemble.
        CheckpointError: a referenced shipped file is missing or not the one recorded.
    """
    members = list(members)
    if not members:
        raise ValueError("an ensemble needs at least one member")
    if any(m["arch"] == "ensemble" for m in members):
        raise ValueError("an ensemble member cannot be an ensemble")
    nets = [create_model(m["arch"], num_classes, in_channels, **m.get("arch_kwargs", {})) for m in members]
    referenced = frozenset(i for i, m in enumerate(members) if m.get("shipped"))
    for i in referenced:
        nets[i].load_state_dict(shipped_member_state(members[i]["shipped"], members[i]["sha256"]))
    return Ensemble(
        nets,
        [float(m.get("scale", 1.0)) for m in members],
        [float(m.get("shift", 0.0)) for m in members],
        referenced,
    )
