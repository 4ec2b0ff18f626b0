"""Where a model runs: ``cpu``, ``cuda`` (the first GPU, or ``cuda:N``) or ``auto`` (a GPU when
PyTorch sees one, else the CPU)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from vidaffect.api import PluginConfig
from vidaffect.errors import PluginError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str, who: str) -> torch.device:
    """The torch device for ``name``.

    Args:
        who: the plugin or command asking, for the message.

    Raises:
        PluginError: ``cuda`` asked for where PyTorch sees no GPU (a CPU-only build, no driver,
            or no device), or a ``cuda:N`` beyond the GPUs there are.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PluginError(f"{who}: device {name!r}, but PyTorch sees no GPU here (use cpu or auto)")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise PluginError(f"{who}: device {name!r}, but there are {torch.cuda.device_count()} GPU(s)")
    return torch.device(name)


class DeviceOption(PluginConfig):
    """The ``device`` option of a plugin that runs a model (mix it into the plugin's Config)."""

    device: str = Field(
        "cpu",
        pattern=r"^(cpu|auto|cuda(:[0-9]+)?)$",
        description="cpu, cuda[:N], or auto (a GPU when there is one)",
    )


def check_device(config: PluginConfig, who: str) -> None:
    """For a plugin's ``preflight``: a GPU asked for is there, before any stage starts.

    Raises:
        PluginError: ``device`` names a GPU that PyTorch does not see.
    """
    device = getattr(config, "device", "cpu")
    if device not in ("cpu", "auto"):
        resolve_device(device, who)
