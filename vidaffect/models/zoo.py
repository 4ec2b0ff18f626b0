"""Shipped checkpoints, found by name (``default`` = ``resnet18``, ``robust``, ``accurate``,
``alexnet``) or by path.

Shipped files live in ``vidaffect/weights/`` as ``fer2013-<name>.safetensors`` (fp16); each
carries its metadata and test figures (see :mod:`vidaffect.models.checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

from vidaffect.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "resnet18"


def shipped_models() -> dict[str, Path]:
    """Names of the shipped checkpoints and their files."""
    return {p.stem.removeprefix("fer2013-"): p for p in sorted(WEIGHTS_DIR.glob("fer2013-*.safetensors"))}


def shipped_name(name_or_path: str) -> str | None:
    """The shipped model's name for a shipped name (``default`` included), else None."""
    name = DEFAULT_MODEL if name_or_path == "default" else name_or_path
    return name if name in shipped_models() else None


def resolve_checkpoint(name_or_path: str) -> Path:
    """The file of a shipped model name (``default`` included) or an existing path.

    Raises:
        CheckpointError: neither a shipped name nor an existing file; lists the shipped names.
    """
    name = shipped_name(name_or_path)
    if name is not None:
        return shipped_models()[name]
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = shipped_models()
    known = ", ".join(["default"] + list(shipped)) if shipped else "none shipped"
    raise CheckpointError(
        f"checkpoint {name_or_path!r} is neither a shipped model ({known}) nor an existing file; "
        "train one with `vidaffect train ...`"
    )
