"""Checkpoint metadata, readable without torch (stage processes that only check a
checkpoint, and config validation, stay light).

See :mod:`vidaffect.models.checkpoint` for the file format.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from vidaffect import __version__
from vidaffect.errors import CheckpointError

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
        context_size: ``(height, width)`` of the context input of a body + context model
            (EMOTIC); ``None`` for single-image models.
        thresholds: multilabel models: per-label probability above which the label counts as
            present (chosen on validation data); ``None`` otherwise.
        temperature: multiclass models: the softmax temperature ``T`` fitted on the
            validation split (temperature scaling, Guo et al., "On Calibration of Modern
            Neural Networks", ICML 2017): probabilities are ``softmax(logits / T)``, so that a
            score of 0.8 is right about 80% of the time. 1.0: not calibrated.
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
    context_size: tuple[int, int] | None = None
    thresholds: list[float] | None = None
    temperature: float = 1.0
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
        if data.get("context_size") is not None:
            data["context_size"] = tuple(data["context_size"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


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
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if _META_KEY not in header:
        raise CheckpointError(f"{path} has no vidaffect metadata (not written by vidaffect?)")
    try:
        return CheckpointMeta.from_json(header[_META_KEY])
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path}: malformed vidaffect metadata: {exc}") from exc
