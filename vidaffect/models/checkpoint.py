"""Checkpoint files: weights plus the metadata that travels with them.

A checkpoint is one ``.safetensors`` file. Its tensors are the model's ``state_dict``; its
header metadata holds one key, ``vidaffect``, whose value is the JSON of
:class:`CheckpointMeta`: architecture name and options, labels in order, input size and
channels, normalisation, training data and split, metrics and code version. Loading never
executes code (safetensors has no pickle).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vidaffect import __version__
from vidaffect.errors import CheckpointError
from vidaffect.models.registry import create_model

FORMAT_VERSION = 1
_META_KEY = "vidaffect"


@dataclass
class CheckpointMeta:
    """Metadata of a checkpoint.

    Attributes:
        arch: registered architecture name (``vidaffect.models.list_models()``).
        labels: class names in logit order.
        input_size: ``(height, width)`` in pixels the model was trained on.
        in_channels: 1 for grayscale, 3 for colour (RGB order).
        mean, std: per-channel normalisation applied to pixels scaled to [0, 1].
        arch_kwargs: keyword options passed to the architecture factory.
        task: ``"multiclass"`` (softmax over labels) or ``"multilabel"`` (sigmoid per label).
        training: free-form description of data, split and schedule.
        metrics: evaluation figures, e.g. ``{"test_top1": 0.71}``.
        code_version: vidaffect version that wrote the file.
        format_version: version of this metadata layout.
    """

    arch: str
    labels: list[str]
    input_size: tuple[int, int]
    in_channels: int
    mean: list[float]
    std: list[float]
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    task: str = "multiclass"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str = __version__
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CheckpointMeta:
        data = json.loads(text)
        data["input_size"] = tuple(data["input_size"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def build_model(meta: CheckpointMeta) -> nn.Module:
    """A freshly initialised model of the architecture described by ``meta``."""
    return create_model(
        meta.arch, num_classes=len(meta.labels), in_channels=meta.in_channels, **meta.arch_kwargs
    )


def save_checkpoint(
    path: str | Path, model: nn.Module, meta: CheckpointMeta, dtype: torch.dtype | None = None
) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` (a ``.safetensors`` file).

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
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata={_META_KEY: meta.to_json()})
    tmp.replace(path)
    return path


def read_meta(path: str | Path) -> CheckpointMeta:
    """Read only the metadata of a checkpoint.

    Raises:
        CheckpointError: the file is missing, not a safetensors file, or has no vidaffect
            metadata.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if _META_KEY not in header:
        raise CheckpointError(f"{path} has no vidaffect metadata (not written by vidaffect?)")
    try:
        return CheckpointMeta.from_json(header[_META_KEY])
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path}: malformed vidaffect metadata: {exc}") from exc


def load_checkpoint(path: str | Path) -> tuple[nn.Module, CheckpointMeta]:
    """Load a checkpoint into a model in eval mode, float32, on the CPU.

    Returns:
        ``(model, meta)``.

    Raises:
        CheckpointError: missing file, unknown architecture, or weights that don't fit it.
    """
    meta = read_meta(path)
    model = build_model(meta)
    state = load_file(str(path), device="cpu")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights don't match architecture {meta.arch!r}: {exc}") from exc
    model.eval()
    return model, meta
