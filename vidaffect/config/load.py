"""Reading a pipeline file: YAML, ``--set`` overrides, validation with errors that name the
file, the stage and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vidaffect.config.document import document_model
from vidaffect.config.errors import format_errors
from vidaffect.config.pipeline import PipelineConfig
from vidaffect.errors import ConfigError
from vidaffect.plugin_manager import get_registry


def validate(data: Any, path: str = "<config>") -> PipelineConfig:
    """Validate a parsed pipeline mapping against the installed plugins.

    Raises:
        ConfigError: listing every problem found, one per line, as ``path: stage › key: message``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    document = document_model()
    try:
        validated = document.model_validate(data)
    except ValidationError as exc:
        names = {kind: sorted(classes) for kind, classes in get_registry().classes.items()}
        lines = format_errors(exc, document, names)
        raise ConfigError(f"{path}: invalid pipeline\n  " + "\n  ".join(lines)) from None
    return PipelineConfig(path, validated)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set key.path=value`` override to the parsed YAML in place.

    ``value`` is parsed as YAML (``3`` is an int, ``[640, 480]`` a list, ``null`` None).
    List items are addressed by index: ``sinks.0.path=out.mp4``.

    Raises:
        ConfigError: malformed assignment or a path through a non-mapping.
    """
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. source.uri=video.mp4")
    try:
        parsed = yaml.safe_load(value) if value != "" else ""
    except yaml.YAMLError:
        parsed = value
    node: Any = data
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i]) or 'top'} has no item {part}")
            if last:
                node[int(part)] = parsed
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = parsed
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {key}: {'.'.join(parts[:i])} is not a mapping")


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Read, override and validate a pipeline YAML file.

    Raises:
        ConfigError: missing file, YAML syntax error (with line), or invalid content.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: pipeline file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for assignment in overrides:
        apply_override(data, assignment)
    where = str(path) + (f" (with --set {' '.join(overrides)})" if overrides else "")
    return validate(data, where)
