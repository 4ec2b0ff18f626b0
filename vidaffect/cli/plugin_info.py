"""What `vidaffect plugins` prints: every installed plugin, where it comes from, its options."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from vidaffect.plugin_manager import distribution_of, get_registry


def describe_plugins() -> dict[str, list[dict[str, Any]]]:
    """Per kind, a list of ``{name, origin, package, summary, options}``."""
    reg = get_registry()
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, classes in reg.classes.items():
        rows = []
        for name, cls in sorted(classes.items()):
            origin = reg.origin[(kind, name)]
            options = []
            for key, field in cls.Config.model_fields.items():
                default = None if field.is_required() else field.get_default(call_default_factory=True)
                options.append(
                    {
                        "name": key,
                        "type": _type_name(field.annotation),
                        "required": field.is_required(),
                        "default": default,
                        "description": field.description or "",
                    }
                )
            rows.append(
                {
                    "name": name,
                    "origin": origin,
                    "package": distribution_of(origin),
                    "summary": summary_of(cls),
                    "options": options,
                }
            )
        out[kind] = rows
    return out


def summary_of(cls: type) -> str:
    """A plugin class's one-line summary: its ``summary`` attribute, else the first line of
    its own docstring, else ``""`` (neither is required of a plugin)."""
    summary = getattr(cls, "summary", None)
    if summary:
        return str(summary)
    lines = (cls.__dict__.get("__doc__") or "").strip().splitlines()
    return lines[0] if lines else ""


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " | ".join(repr(a) for a in get_args(annotation))
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "")


def format_plugins(info: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for kind, rows in info.items():
        lines.append(f"{kind}s:")
        for row in rows:
            lines.append(f"  {row['name']:<12} {row['summary']}  [{row['package']}]")
            name_w = max((len(o["name"]) for o in row["options"]), default=0)
            type_w = max((len(o["type"]) for o in row["options"]), default=0)
            for opt in row["options"]:
                default = "required" if opt["required"] else f"default {opt['default']!r}"
                lines.append(
                    f"      {opt['name']:<{name_w}}  {opt['type']:<{type_w}}  {default}. {opt['description']}"
                )
        lines.append("")
    return "\n".join(lines).rstrip()
