"""Pipeline configuration: YAML -> one validated :class:`PipelineConfig`.

A pipeline file has four stage sections (``source``, ``detector``, ``classifier``, ``sinks``)
and a few engine settings. Each stage names its plugin with ``type``; the remaining keys are
the stage options (``workers``, ``on_error``, ...) plus the plugin's own options, validated
by the plugin's ``Config`` model. Every problem is reported at once, as
``FILE: stage › key: message`` with a "did you mean" for misspelt keys, before any process
starts (:class:`vidaffect.errors.ConfigError`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vidaffect.api import PluginConfig
from vidaffect.errors import ConfigError, PluginError
from vidaffect.plugins import get_registry

STAGE_SECTIONS = {"source": "source", "detector": "detector", "classifier": "classifier"}


class StageOptions(BaseModel):
    """Options every stage accepts besides its plugin's own."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="registered plugin name (see `vidaffect plugins`)")
    workers: int = Field(1, ge=1, le=16, description="processes running this stage in parallel")
    on_error: Literal["stop", "restart"] = Field(
        "stop", description="when the stage crashes: stop the pipeline, or restart the stage"
    )
    max_restarts: int = Field(3, ge=0, description="restarts allowed before the pipeline stops")
    threads: int | None = Field(
        None, ge=1, le=64, description="torch/OpenCV threads per worker (default: cores / workers)"
    )


class StageConfig(BaseModel):
    """A validated stage: its section, common options and plugin options."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    kind: str
    options: StageOptions
    plugin: PluginConfig

    @property
    def plugin_dict(self) -> dict[str, Any]:
        return self.plugin.model_dump(mode="json")


class EngineSettings(BaseModel):
    """Top-level engine settings of a pipeline file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("pipeline", description="pipeline name, used in logs")
    transport: Literal["ipc", "tcp"] = Field("ipc", description="how stages talk: ipc:// or tcp://")
    host: str = Field("127.0.0.1", description="tcp transport: address stages bind to")
    port_base: int | None = Field(
        None, ge=1024, le=65000, description="tcp transport: first port (default: free ports)"
    )
    hwm: int = Field(4, ge=1, le=1000, description="high-water mark (messages) between stages")
    reorder_window: int = Field(64, ge=1, description="frames held to restore order after fan-out")
    stop_timeout: float = Field(10.0, gt=0, description="seconds to drain after a stop request")
    term_timeout: float = Field(5.0, gt=0, description="seconds after SIGTERM before SIGKILL")
    status: bool = Field(True, description="show a live status line")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve Prometheus metrics on this port (loopback)"
    )
    metrics_file: str | None = Field(None, description="write final per-stage metrics JSON here")
    stream_id: str = Field("cam0", description="stream id of the source (event topic)")


class PipelineConfig(BaseModel):
    """The whole validated pipeline."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: str
    engine: EngineSettings
    source: StageConfig
    detector: StageConfig | None
    classifier: StageConfig | None
    sinks: list[StageConfig]

    @property
    def stages(self) -> list[StageConfig]:
        """Stages in flow order: source, detector, classifier, sinks."""
        return [s for s in (self.source, self.detector, self.classifier) if s] + self.sinks


_TOP_KEYS = {"pipeline", "source", "detector", "classifier", "sinks"}


def _suggest(key: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _describe_expected(err: dict[str, Any]) -> str:
    msg = err["msg"]
    if err["type"] == "value_error":
        return str(err.get("ctx", {}).get("error", msg))
    if "input" in err and err["type"] != "missing":
        return f"{msg}, got {err['input']!r}"
    return msg


def _format_errors(
    where: str, exc: ValidationError, valid_keys: list[str], prefix: tuple[str, ...] = ()
) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = prefix + tuple(str(p) for p in err["loc"])
        key = ".".join(loc) if loc else "(section)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{where} › {key}: unknown key{_suggest(str(loc[-1]), valid_keys)}")
        elif err["type"] == "missing":
            lines.append(f"{where} › {key}: required key is missing")
        else:
            lines.append(f"{where} › {key}: {_describe_expected(err)}")
    return lines


def _validate_stage(label: str, kind: str, raw: Any, errors: list[str]) -> StageConfig | None:
    if not isinstance(raw, dict):
        errors.append(f"stage {label!r}: expected a mapping of options, got {type(raw).__name__}")
        return None
    where = f"stage {label!r}"
    common_keys = set(StageOptions.model_fields)
    if "type" not in raw:
        errors.append(f"{where} › type: required key is missing (the plugin name)")
        return None
    try:
        cls = get_registry().get(kind, str(raw["type"]))
    except PluginError as exc:
        known = sorted(get_registry().classes[kind])
        errors.append(f"{where} › type: {exc}{_suggest(str(raw['type']), known)}")
        return None
    plugin_keys = list(cls.Config.model_fields)
    valid = sorted(common_keys | set(plugin_keys))
    options = {k: v for k, v in raw.items() if k in common_keys}
    plugin_raw = {k: v for k, v in raw.items() if k not in common_keys}
    stage_errors: list[str] = []
    common = plugin = None
    try:
        common = StageOptions(**options)
    except ValidationError as exc:
        stage_errors += _format_errors(where, exc, valid)
    try:
        plugin = cls.Config(**plugin_raw)
    except ValidationError as exc:
        stage_errors += _format_errors(where, exc, valid)
    if common is not None and kind in ("source", "sink") and common.workers != 1:
        stage_errors.append(f"{where} › workers: a {kind} runs as one process (workers: 1), got {common.workers}")
    errors.extend(stage_errors)
    if stage_errors or common is None or plugin is None:
        return None
    return StageConfig(name=label, kind=kind, options=common, plugin=plugin)


def validate(data: Any, path: str = "<config>") -> PipelineConfig:
    """Validate a parsed pipeline mapping.

    Raises:
        ConfigError: listing every problem as ``path: stage › key: message``.
    """
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            errors.append(f"top level › {key}: unknown section{_suggest(str(key), sorted(_TOP_KEYS))}")
    engine = None
    try:
        engine = EngineSettings(**(data.get("pipeline") or {}))
    except ValidationError as exc:
        errors += _format_errors("pipeline", exc, sorted(EngineSettings.model_fields))
    except TypeError:
        errors.append("pipeline: expected a mapping of settings")

    stages: dict[str, StageConfig | None] = {}
    for section in ("source", "detector", "classifier"):
        if data.get(section) is None:
            if section == "source":
                errors.append("stage 'source': required section is missing")
            stages[section] = None
            continue
        stages[section] = _validate_stage(section, section, data[section], errors)
    sinks: list[StageConfig] = []
    raw_sinks = data.get("sinks")
    if raw_sinks is None or raw_sinks == []:
        errors.append("stage 'sinks': at least one sink is required")
    elif not isinstance(raw_sinks, list):
        errors.append("stage 'sinks': expected a list of sinks")
    else:
        for i, raw in enumerate(raw_sinks):
            name = f"sinks[{i}]"
            if isinstance(raw, dict) and "type" in raw:
                name = f"sinks[{i}] ({raw['type']})"
            stage = _validate_stage(name, "sink", raw, errors)
            if stage is not None:
                stage.name = f"sink-{i}-{stage.options.type}"
                sinks.append(stage)
    if errors:
        raise ConfigError(f"{path}: invalid pipeline\n  " + "\n  ".join(errors))
    assert engine is not None and stages["source"] is not None
    return PipelineConfig(
        path=path, engine=engine, source=stages["source"], detector=stages["detector"],
        classifier=stages["classifier"], sinks=sinks,
    )


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
    return validate(data, str(path))
