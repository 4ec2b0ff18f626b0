"""Checkpoint files: weights plus the metadata that travels with them.

A checkpoint is one ``.safetensors`` file. Its tensors are the model's ``state_dict``; its
header metadata holds one key, ``vidaffect``, whose value is the JSON of
:class:`CheckpointMeta`: architecture name and options, labels in order, input size and
channels, normalisation, training data and split, metrics and code version. Loading never
executes code (safetensors has no pickle).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import nn

from vidaffect.errors import CheckpointError
from vidaffect.models.catalog import create_model
from vidaffect.models.meta import _META_KEY, FORMAT_VERSION, CheckpointMeta, read_meta

__all__ = [
    "FORMAT_VERSION",
    "CheckpointMeta",
    "build_model",
    "load_checkpoint",
    "read_meta",
    "save_checkpoint",
]


def build_model(meta: CheckpointMeta) -> nn.Module:
    """A freshly initialised model (train mode, float32) of the architecture in ``meta``.

    Raises:
        CheckpointError: ``meta.arch`` is not a registered architecture.
        TypeError, ValueError: ``meta.arch_kwargs`` or ``meta.in_channels`` don't suit it.
    """
    return create_model(
        meta.arch, num_classes=len(meta.labels), in_channels=meta.in_channels, **meta.arch_kwargs
    )


def save_checkpoint(
    path: str | Path, model: nn.Module, meta: CheckpointMeta, dtype: torch.dtype | None = None
) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` (a ``.safetensors`` file).

    The file is written whole under a temporary name and then renamed, so a reader never sees
    half a checkpoint; its mode follows the umask like any other output.

    Args:
        dtype: cast floating-point tensors to this dtype (``torch.float16`` for shipped
            checkpoints); ``None`` keeps them as they are.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[name] = t.contiguous()
    # Serialised in memory and written with open(): safetensors' save_file creates its file with
    # mode 0600, whereas every other output honours the umask (0644 with the usual 022).
    data = save(state, metadata={_META_KEY: meta.to_json()})
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> tuple[nn.Module, CheckpointMeta]:
    """Load a checkpoint into a model in eval mode, float32, on the CPU.

    Returns:
        ``(model, meta)``.

    Raises:
        CheckpointError: missing file, unknown architecture, architecture options or input
            channels it does not take, or weights that don't fit it.
    """
    meta = read_meta(path)
    try:
        model = build_model(meta)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: cannot build architecture {meta.arch!r} with options "
            f"{meta.arch_kwargs} and {meta.in_channels} input channels: {exc}"
        ) from exc
    state = load_file(str(path), device="cpu")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights don't match architecture {meta.arch!r}: {exc}") from exc
    model.eval()
    return model, meta
