"""Pydantic's validation errors of a pipeline file, as lines a person can act on:
``stage 'detector' › min_neighbours: unknown key (did you mean 'min_neighbors'?)``."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

_SECTIONS = ("pipeline", "tracking", "source", "sources", "detector", "classifier", "sinks")
_KINDS = {
    "source": "source",
    "sources": "source",
    "detector": "detector",
    "classifier": "classifier",
    "sinks": "sink",
}


def suggest(key: str, valid: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``valid`` (difflib), or an empty string."""
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _expected(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "value_error":
        return str(err.get("ctx", {}).get("error", msg))
    if "input" in err and err["type"] != "missing":
        return f"{msg}, got {err['input']!r}"
    return msg


def _stage_label(section: str, loc: tuple[Any, ...]) -> tuple[str, Any, tuple[Any, ...]]:
    """``stage 'sinks[0] (jsonl)'``, the plugin tag, and the rest of ``loc`` after both."""
    if section in ("sources", "sinks") and loc and isinstance(loc[0], int):
        label, rest = f"{section}[{loc[0]}]", loc[1:]
    else:
        label, rest = section, loc
    tag = rest[0] if rest else None
    if isinstance(tag, str) and section == "sinks":
        label += f" ({tag})"
    return f"stage {label!r}", tag, rest[1:]


def _line(err: Any, document: type[BaseModel], registry_names: dict[str, list[str]]) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if not loc:  # a check of the whole file: its message is already a full line
        return _expected(err)
    section, rest = str(loc[0]), loc[1:]
    if section not in _SECTIONS:
        return f"top level › {section}: unknown section{suggest(section, list(_SECTIONS))}"
    if section in ("pipeline", "tracking"):
        model = document.model_fields[section].annotation
        valid = sorted(getattr(_model_of(model), "model_fields", {}))
        where, key_loc = section, rest
    else:
        where, tag, key_loc = _stage_label(section, rest)
        stage_kind = _KINDS[section]
        if kind == "union_tag_invalid":
            tag = str(err["ctx"]["tag"])
            names = registry_names[stage_kind]
            return (
                f"{where} › type: unknown {stage_kind} {tag!r}{suggest(tag, names)}; installed "
                f"{stage_kind}s: {', '.join(names) or 'none'}"
            )
        if kind == "union_tag_not_found":
            return f"{where} › type: required key is missing (the plugin name)"
        if kind in ("model_attributes_type", "model_type", "dict_type"):
            return f"{where}: expected a mapping of options, got {type(err['input']).__name__}"
        valid = _variant_keys(document, section, tag)
        if kind == "extra_forbidden" and key_loc and key_loc[-1] == "stream" and stage_kind != "source":
            return f"{where} › stream: only sources have a stream id"
    key = ".".join(str(p) for p in key_loc) or "(section)"
    if kind == "extra_forbidden":
        return f"{where} › {key}: unknown key{suggest(str(key_loc[-1]), valid)}"
    if kind == "missing":
        return f"{where} › {key}: required key is missing"
    if kind in ("model_attributes_type", "model_type", "dict_type") and not key_loc:
        return f"{where}: expected a mapping of settings"
    return f"{where} › {key}: {_expected(err)}"


def _model_of(annotation: Any) -> Any:
    """The model class inside ``X | None``."""
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _variant_keys(document: type[BaseModel], section: str, tag: Any) -> list[str]:
    """The keys the variant of plugin ``tag`` accepts (for "did you mean")."""
    for variant in _variants(document.model_fields[section].annotation):
        if getattr(variant.model_fields["type"].annotation, "__args__", (None,))[0] == tag:
            return sorted(variant.model_fields)
    return []


def _variants(annotation: Any) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel) and "type" in arg.model_fields:
            out.append(arg)
        else:
            out += _variants(arg)
    if hasattr(annotation, "__metadata__"):
        out += _variants(annotation.__origin__)
    return out


def format_errors(
    exc: ValidationError, document: type[BaseModel], registry_names: dict[str, list[str]]
) -> list[str]:
    """One line per error, in the order pydantic found them, without repeats."""
    lines: list[str] = []
    for err in exc.errors():
        line = _line(err, document, registry_names)
        if line not in lines:
            lines.append(line)
    return lines
