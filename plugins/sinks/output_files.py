"""Output paths of file sinks: one file per stream, parent folders created, writability checked."""

from __future__ import annotations

import os
from pathlib import Path

from vidaffect.errors import SinkError


def prepare_output(path: str | Path, sink: str) -> Path:
    """Create the parent folder of ``path`` and check that a file can be written there.

    Raises:
        SinkError: the folder cannot be created or is not writable.
    """
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"{sink} sink: cannot create folder {path.parent}: {exc.strerror}") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SinkError(f"{sink} sink: {path} is not writable")
    return path


def stream_path(path: Path, stream: str, first_stream: str) -> Path:
    """``path`` for the first stream; ``name.<stream>.ext`` beside it for any other stream."""
    if stream == first_stream:
        return path
    return path.with_name(f"{path.stem}.{stream}{path.suffix}")
