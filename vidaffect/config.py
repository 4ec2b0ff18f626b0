"""Pipeline configuration: YAML -> one validated :class:`PipelineConfig`.

A pipeline file has four stage sections (``source`` or ``sources``, ``detector``,
``classifier``, ``sinks``), the engine settings (``pipeline``) and optionally ``tracking``. Each stage names its plugin with ``type``; the remaining keys are
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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from vidaffect.api import PluginConfig
from vidaffect.errors import ConfigError, PluginError
from vidaffect.plugin_manager import get_registry
from vidaffect.runtime.addresses import is_loopback

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
        None,
        ge=1,
        le=64,
        description="torch/OpenCV threads per worker (default: the detector and classifier "
        "workers share the cores evenly; sources and sinks get 1)",
    )
    batch: int = Field(
        16,
        ge=1,
        le=256,
        description="most frames handed to the plugin in one call: frames already queued are "
        "taken together (faces batched across frames), never waited for",
    )
    stream: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="sources only: stream id of this source (event topic); default "
        "pipeline.stream_id for one source, cam0, cam1, ... for a list",
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
    auth: Literal["curve", "none"] = Field(
        "curve",
        description="tcp transport: 'curve' encrypts and authenticates every stage connection "
        "(CurveZMQ, a key pair made for each run, or curve_secret_key); 'none' sends "
        "in the clear and is allowed on a loopback host only, unless insecure",
    )
    curve_secret_key: str | None = Field(
        None,
        description="tcp transport across hosts: key pair file (NAME.key_secret from "
        "`vidaffect keys`) that the stages on every host use instead of a per-run pair",
    )
    insecure: bool = Field(
        False,
        description="allow binding beyond loopback without authentication (host with auth "
        "'none', metrics_host); anyone on the network can then reach those ports",
    )
    host: str = Field("127.0.0.1", description="tcp transport: address stages bind to")
    port_base: int | None = Field(
        None, ge=1024, le=65000, description="tcp transport: first port (default: free ports)"
    )
    hwm: int = Field(4, ge=1, le=1000, description="high-water mark (messages) between stages")
    reorder_window: int = Field(64, ge=1, description="frames held to restore order after fan-out")
    stop_timeout: float = Field(10.0, gt=0, description="seconds to drain after a stop request")
    term_timeout: float = Field(5.0, gt=0, description="seconds after SIGTERM before SIGKILL")
    status: bool = Field(True, description="show a live status line")
    max_message_mb: float = Field(
        200.0,
        gt=0,
        le=4096,
        description="largest message part a stage accepts (MB); a larger one is refused unread and "
        "its sender disconnected. 200 holds a 50-megapixel BGR frame",
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve Prometheus metrics on this port"
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="address the metrics port binds to; beyond loopback needs insecure "
        "(the endpoint has no authentication)",
    )
    metrics_file: str | None = Field(None, description="write final per-stage metrics JSON here")
    stream_id: str = Field("cam0", description="stream id of a single source (event topic)")

    @field_validator("curve_secret_key")
    @classmethod
    def _key_file(cls, path: str | None) -> str | None:
        from vidaffect.runtime.security import holds_secret_key

        if path is not None and not holds_secret_key(path):
            raise ValueError(
                f"{path} is not a key pair file with a secret key (give the NAME.key_secret "
                "file that `vidaffect keys` wrote)"
            )
        return path

    @field_validator("host")
    @classmethod
    def _stage_exposure(cls, host: str, info: ValidationInfo) -> str:
        d = info.data
        if (
            d.get("transport") == "tcp"
            and d.get("auth") == "none"
            and not is_loopback(host)
            and not d.get("insecure")
        ):
            raise ValueError(
                f"{host!r} lets other hosts connect to the stages, and auth is 'none': anyone "
                "who reaches these ports could inject or read frames and reports. Use auth: "
                "curve (the default), a loopback host, or insecure: true to accept the risk"
            )
        return host

    @field_validator("metrics_host")
    @classmethod
    def _metrics_exposure(cls, host: str, info: ValidationInfo) -> str:
        if not is_loopback(host) and not info.data.get("insecure"):
            raise ValueError(
                f"{host!r} serves the metrics to other hosts without authentication (the "
                "Prometheus endpoint has none); keep 127.0.0.1 and scrape through a proxy, "
                "or set insecure: true to accept the risk"
            )
        return host

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * 2**20)


class TrackingSettings(BaseModel):
    """The ``tracking`` section: face tracks across frames and per-track smoothing.

    The detector stage runs the detector on every ``detect_every``-th frame of a stream, and
    also on the next frame whenever a track is new (not yet confirmed), was missed by the
    last detection, or leaves the frame; in between, face boxes are the Kalman predictions
    of a ByteTrack tracker (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating
    Every Detection Box", ECCV 2022; the implementation of the ``trackers`` package). Sinks
    then smooth each track's emotion probabilities and report label changes.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="track faces (set false to detect on every frame)")
    detect_every: int = Field(5, ge=1, le=300, description="run the detector at least every N frames")
    lost_after_s: float = Field(
        1.0, gt=0, le=60, description="seconds a track survives without a matching detection"
    )
    min_iou: float = Field(0.2, gt=0, lt=1, description="IoU needed to match a detection to a track")
    cut_threshold: float | None = Field(
        27.0,
        gt=0,
        le=255,
        description="shot changes: PySceneDetect ContentDetector threshold; at a cut all tracks end "
        "and new ones start (null: off)",
    )
    smoothing: Literal["ema", "window", "none"] = Field(
        "ema", description="per-track smoothing of emotion probabilities"
    )
    # alpha 0.2 and hysteresis 0.1: python -m benchmarks.smoothing (README, "Choosing the smoothing")
    alpha: float = Field(0.2, gt=0, le=1, description="ema: weight of the newest frame (1 = no smoothing)")
    window: int = Field(8, ge=1, le=1000, description="window: frames averaged")
    hysteresis: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="a track's label changes only when another beats it by this probability "
        "(default: 0.1 with ema and window, 0 with none)",
    )


class PipelineConfig(BaseModel):
    """The whole validated pipeline."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: str
    engine: EngineSettings
    sources: list[StageConfig]
    detector: StageConfig | None
    classifier: StageConfig | None
    sinks: list[StageConfig]
    tracking: TrackingSettings | None = None

    @property
    def source(self) -> StageConfig:
        """The first (often the only) source."""
        return self.sources[0]

    @property
    def streams(self) -> list[str]:
        """Stream ids, one per source, in the order of ``sources``."""
        return [str(s.options.stream) for s in self.sources]

    @property
    def stages(self) -> list[StageConfig]:
        """Stages in flow order: sources, detector, classifier, sinks."""
        return self.sources + [s for s in (self.detector, self.classifier) if s] + self.sinks


_TOP_KEYS = {"pipeline", "source", "sources", "detector", "classifier", "sinks", "tracking"}


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
    registry = get_registry()
    try:
        cls = registry.get(kind, str(raw["type"]))
    except PluginError as exc:
        known = sorted(registry.classes[kind])
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
        stage_errors.append(
            f"{where} › workers: a {kind} runs as one process (workers: 1), got {common.workers}"
        )
    if common is not None and kind != "source" and common.stream is not None:
        stage_errors.append(f"{where} › stream: only sources have a stream id")
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

    tracking = None
    if data.get("tracking") is not None:
        try:
            tracking = TrackingSettings(**data["tracking"])
        except ValidationError as exc:
            errors += _format_errors("tracking", exc, sorted(TrackingSettings.model_fields))
        except TypeError:
            errors.append("tracking: expected a mapping of settings")
    sources = _validate_sources(data, engine, errors)
    stages: dict[str, StageConfig | None] = {}
    for section in ("detector", "classifier"):
        if data.get(section) is None:
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
    assert engine is not None and sources
    if len(sources) == 1 and sources[0].options.stream is None:
        sources[0].options.stream = engine.stream_id
    return PipelineConfig(
        path=path,
        engine=engine,
        sources=sources,
        detector=stages["detector"],
        classifier=stages["classifier"],
        sinks=sinks,
        tracking=tracking if tracking is not None and tracking.enabled else None,
    )


def _validate_sources(
    data: dict[str, Any], engine: EngineSettings | None, errors: list[str]
) -> list[StageConfig]:
    """``source`` (one mapping) or ``sources`` (a list): stages named ``source`` or
    ``source-<stream>``, each with a distinct stream id."""
    if data.get("source") is not None and data.get("sources") is not None:
        errors.append("top level › sources: give either 'source' or 'sources', not both")
        return []
    if data.get("source") is not None:
        stage = _validate_stage("source", "source", data["source"], errors)
        return [stage] if stage is not None else []
    raw = data.get("sources")
    if raw is None:
        errors.append("stage 'source': required section is missing ('source' or 'sources')")
        return []
    if not isinstance(raw, list) or not raw:
        errors.append("stage 'sources': expected a non-empty list of sources")
        return []
    out: list[StageConfig] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(raw):
        stage = _validate_stage(f"sources[{i}]", "source", item, errors)
        if stage is None:
            continue
        stream = stage.options.stream or (f"cam{i}" if len(raw) > 1 else None)
        if stream is None:  # a one-item list: pipeline.stream_id, set by validate()
            out.append(stage)
            continue
        if stream in seen:
            errors.append(
                f"stage 'sources[{i}]' › stream: {stream!r} is already the stream of {seen[stream]}"
            )
            continue
        seen[stream] = f"sources[{i}]"
        stage.options.stream = stream
        stage.name = "source" if len(raw) == 1 else f"source-{stream}"
        out.append(stage)
    return out


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
