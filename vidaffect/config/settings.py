"""The engine's sections of a pipeline file: ``pipeline`` (:class:`EngineSettings`), ``tracking``
(:class:`TrackingSettings`), and the keys every stage takes besides its plugin's options
(:class:`StageKeys` and its per-kind variants)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from vidaffect.runtime.addresses import is_loopback


class Placement(BaseModel):
    """``placement`` of a stage with ``pipeline.runner: ray``: what a Ray node must offer to run
    its workers (one Ray actor each). Without it, Ray places the actor where it sees fit.

    Resources are Ray's: ``num_cpus``/``num_gpus`` reserve that many CPUs/GPUs of the node for
    the worker while it runs (without, a worker reserves none: its ``threads`` decide what it
    uses); ``resources`` are custom ones a node was started with
    (``ray start --resources '{"gpu_box": 1}'``); ``labels`` must all match the node's labels
    (``ray start --labels camera_lan=hall``), e.g. the node that can reach a camera.
    """

    model_config = ConfigDict(extra="forbid")

    num_cpus: float | None = Field(None, ge=0, description="CPUs reserved per worker (Ray)")
    num_gpus: float | None = Field(None, ge=0, description="GPUs reserved per worker (Ray)")
    resources: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources per worker, e.g. {gpu_box: 1}"
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="node labels the worker's node must have, e.g. {zone: hall}"
    )

    def demands(self) -> dict[str, float]:
        """Every resource asked for, in Ray's names (``CPU``, ``GPU``, custom ones)."""
        out: dict[str, float] = {}
        if self.num_cpus:
            out["CPU"] = self.num_cpus
        if self.num_gpus:
            out["GPU"] = self.num_gpus
        return {**out, **self.resources}


class StageKeys(BaseModel):
    """Keys every stage accepts besides its plugin's own (the engine's, not the plugin's)."""

    model_config = ConfigDict(extra="forbid")

    placement: Placement | None = Field(
        None, description="runner ray: the node resources or labels this stage's workers need"
    )

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


class _OneProcess(StageKeys):
    @field_validator("workers")
    @classmethod
    def _one_worker(cls, workers: int) -> int:
        if workers != 1:
            kind = "source" if issubclass(cls, SourceKeys) else "sink"
            raise ValueError(f"a {kind} runs as one process (workers: 1), got {workers}")
        return workers


class SourceKeys(_OneProcess):
    """The stage keys of a source: one process, and the stream id it feeds."""

    stream: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="stream id of this source (event topic); default pipeline.stream_id for one "
        "source, cam0, cam1, ... for a list",
    )


class SinkKeys(_OneProcess):
    """The stage keys of a sink: one process."""


STAGE_KEYS: dict[str, type[StageKeys]] = {
    "source": SourceKeys,
    "detector": StageKeys,
    "classifier": StageKeys,
    "sink": SinkKeys,
}
"""The engine's stage keys model of each plugin kind."""


class DashboardSettings(BaseModel):
    """``pipeline.dashboard``: start ``vidaffect dashboard`` with the pipeline, watching its
    ``preview`` sinks, and stop it at the end."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(ge=1, le=65535, description="port to serve the dashboard on")
    host: str = Field("127.0.0.1", description="address to serve on; beyond loopback needs token_env")
    token_env: str | None = Field(None, description="environment variable holding the token viewers give")

    @model_validator(mode="after")
    def _exposure(self) -> DashboardSettings:
        if not is_loopback(self.host) and self.token_env is None:
            raise ValueError(
                f"host {self.host!r} lets other hosts watch the video: set token_env (an "
                "environment variable holding the token), or keep 127.0.0.1"
            )
        return self


class RaySettings(BaseModel):
    """``pipeline.ray``: the Ray cluster of a run with ``runner: ray``."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        "auto",
        pattern=r"^(auto|local|[A-Za-z0-9_.:\[\]-]+:[0-9]+)$",
        description="'auto': RAY_ADDRESS, or the cluster `ray start` runs on this machine, or "
        "else a one-machine cluster for this run; 'local': always a one-machine cluster for "
        "this run; HOST:PORT: the head node's GCS",
    )
    placement_timeout: float = Field(
        120.0, gt=0, description="seconds to wait for a worker to be placed (or re-placed)"
    )
    face_patches: bool = Field(
        True,
        description="when no sink needs pixels, send the classifier only the square it reads "
        "around each face (a few KB), not whole frames",
    )


class EngineSettings(BaseModel):
    """Top-level engine settings of a pipeline file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("pipeline", description="pipeline name, used in logs")
    runner: Literal["local", "ray"] = Field(
        "local",
        description="where stage workers run: 'local' processes of this machine, or 'ray' actors "
        "of a Ray cluster (pip install vidaffect[ray]; frames go on ZeroMQ tcp)",
    )
    ray: RaySettings = Field(RaySettings.model_validate({}), description="runner ray: the cluster")
    transport: Literal["ipc", "tcp"] = Field(
        "ipc", description="how stages talk: ipc:// or tcp:// (always tcp with runner ray)"
    )
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
    dashboard: DashboardSettings | None = Field(
        None, description="serve vidaffect dashboard with this run (needs a preview sink)"
    )
    stream_id: str = Field("cam0", description="stream id of a single source (event topic)")

    @model_validator(mode="after")
    def _ray_needs_tcp(self) -> EngineSettings:
        if self.runner == "ray":
            if "transport" in self.model_fields_set and self.transport == "ipc":
                raise ValueError(
                    "runner 'ray' places stages on several hosts, and ipc:// reaches one: "
                    "use transport: tcp (the default with runner ray)"
                )
            self.transport = "tcp"
        return self

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
