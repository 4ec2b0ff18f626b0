"""Loading EMOTIC checkpoints, with their metadata checked before any weight is read."""

from __future__ import annotations

from pathlib import Path

from vidaffect.errors import CheckpointError
from vidaffect.models.catalog import model_inputs
from vidaffect.models.checkpoint import load_checkpoint
from vidaffect.models.emotic import EmoticNet
from vidaffect.models.emotic_labels import check_emotic_meta
from vidaffect.models.meta import CheckpointMeta, read_meta


def load_emotic_checkpoint(path: str | Path) -> tuple[EmoticNet, CheckpointMeta]:
    """Load an EMOTIC checkpoint (eval mode, float32, CPU) after checking its metadata.

    Raises:
        CheckpointError: missing or unreadable file, not an EMOTIC checkpoint, or an
            architecture without body and context inputs (checked before any weight is read).
    """
    meta = check_emotic_meta(read_meta(path), path)
    if model_inputs(meta.arch) != ("body", "context"):
        raise CheckpointError(f"{path}: architecture {meta.arch!r} does not take body and context inputs")
    model, meta = load_checkpoint(path)
    return model, meta  # type: ignore[return-value]
