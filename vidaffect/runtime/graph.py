"""From a validated pipeline to one typed spec per stage worker process (:class:`StageSpec`).

Flow: every source -> detector -> classifier -> every sink. Each worker of a stage binds its own
input endpoint where it runs and reports it; once all have, the supervisor sends every worker
where the others listen (:class:`~.control.Wiring`), and every worker of the upstream stage
connects a PUSH socket to each worker of the stage it feeds (two-phase start: no address is
guessed in advance, so a worker can run on another host, or move there when restarted).
A stage with one worker restores frame order (its input may come from a fanned-out stage);
workers of a fanned-out stage see only some frames and pass them on unordered.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidaffect.config import PipelineConfig, StageConfig
from vidaffect.errors import PluginError, VidaffectError


@dataclass(frozen=True)
class StageSpec:
    """What one stage worker process needs, built by :func:`build_specs` (picklable, frozen).

    Attributes:
        stage, kind, worker, workers: the stage's name and plugin kind, this worker's index
            and the stage's worker count.
        plugin, plugin_options: the registered plugin name and its validated options (JSON).
        threads, batch: torch/OpenCV threads; most frames handed to the plugin per call.
        input: the endpoint this worker binds (None for sources): ``ipc://PATH``, or
            ``tcp://HOST:PORT`` where the port may be ``*`` (the system picks a free one; the
            worker reports the endpoint it got).
        downstream: the names of the stages this worker feeds, in order; where their workers
            listen comes with the :class:`~.control.Wiring` message.
        outputs_drop, outputs_hwm, outputs_pixels: per downstream stage: drop when it is busy
            (an isolated sink of a live run), the send high-water mark, whether it reads pixels.
        outputs_patch: per downstream stage, the face patch to send instead of whole frames
            (``margin``, ``side``, ``gray`` of :class:`~vidaffect.api.FacePatch`), or None.
        sticky: a stream's frames always go to the same downstream worker: worker
            ``i % workers`` for the ``i``-th stream of ``streams`` (:meth:`stream_key`).
        producers: upstream processes that each send one EOS per stream.
        ordered, reorder_window: restore frame order (one worker), and how many frames to hold.
        live, hwm: a live pipeline (drop-oldest at the source), the input high-water mark.
        streams, stream_id: every stream id; a source's own.
        tracking, smoothing: the tracking settings for the detector / the smoothing stage.
        control, updates: the supervisor's endpoints.
        max_message_bytes: largest message part accepted.
        restarts: how many times this worker was restarted (0 the first time).
    """

    stage: str
    kind: str
    worker: int
    workers: int
    plugin: str
    plugin_options: dict[str, Any]
    threads: int
    batch: int
    input: str | None
    downstream: tuple[str, ...]
    outputs_drop: tuple[bool, ...]
    outputs_hwm: tuple[int, ...]
    outputs_pixels: tuple[bool, ...]
    outputs_patch: tuple[dict[str, Any] | None, ...]
    sticky: bool
    producers: int
    ordered: bool
    reorder_window: int
    live: bool
    hwm: int
    streams: tuple[str, ...]
    stream_id: str | None
    tracking: dict[str, Any] | None
    smoothing: dict[str, Any] | None
    control: str
    updates: str
    max_message_bytes: int
    restarts: int = 0

    def stream_key(self, stream: str) -> int:
        """The routing key of ``stream``'s frames to a sticky stage: its index among
        :attr:`streams` (so N workers share N streams one each, and a runner knows which
        worker gets which camera)."""
        return self.streams.index(stream)


@dataclass(frozen=True)
class Launch:
    """What the supervisor adds when it starts (or restarts) a worker process.

    Attributes:
        environ: the supervisor's environment now (not the fork server's at its start).
        supervisor: the supervisor's process identity (the stage exits when it is gone); None
            on another host, where the stage watches the control channel's heartbeat instead.
        run_dir: the run's folder on the worker's host (sequence files of restarted sources,
            ipc sockets).
        curve: the run's CurveZMQ keys (:meth:`RunKeys.to_spec`), None without.
        incarnation: this start of the worker, unique in the run and higher for each later
            start: its updates carry it, and the supervisor ignores updates of earlier
            incarnations and of processes it never started. A source's frames carry it too
            (``meta["source_incarnation"]``).
        seq_from: a restarted source's lowest next sequence number: above every number the
            earlier starts sent, as far as the supervisor can tell (their last reported
            ``next_seq`` plus the frames their rate allows since, so numbers may be skipped).
            The source takes it where its sequence file is not there (restarted on another
            host); the file's exact number where it is. 0 on a first start.
    """

    environ: dict[str, str]
    supervisor: tuple[int, int | None] | None
    run_dir: str | None
    curve: dict[str, Any] | None
    incarnation: int = 0
    seq_from: int = 0


@dataclass
class WorkerSpec:
    """A stage worker: which stage it belongs to and the spec its process receives."""

    stage: StageConfig
    worker: int
    spec: StageSpec

    @property
    def label(self) -> str:
        return self.spec.stage if self.stage.options.workers == 1 else f"{self.spec.stage}[{self.worker}]"


def default_threads(config: PipelineConfig) -> int:
    """Threads per compute worker so detector and classifier workers share the cores evenly."""
    compute = sum(s.options.workers for s in (config.detector, config.classifier) if s)
    return max(1, (os.cpu_count() or 1) // max(1, compute))


LIVE_HWM = 1
"""High-water mark between stages of a live pipeline: at most one frame waits per hop,
so the source's drop-oldest buffer, not a queue, absorbs a slow stage."""


def is_live(config: PipelineConfig) -> bool:
    """Whether any source runs live (cameras, streams, files in ``mode: live``)."""
    from vidaffect.plugin_manager import get_registry

    reg = get_registry()
    return any(reg.get("source", s.type).is_live(s.plugin) for s in config.sources)


def downstream_stages(specs: list[WorkerSpec]) -> dict[str, set[str]]:
    """Stage name -> names of the stages it sends frames to (empty for sinks)."""
    return {ws.spec.stage: set(ws.spec.downstream) for ws in specs}


def preflight(config: PipelineConfig) -> None:
    """Checks before any process starts: the metrics port is free, and every stage plugin's
    :meth:`~vidaffect.api.Plugin.preflight` (a source opens, an output folder is writable, an
    endpoint can be bound).

    Raises:
        PluginError: a check failed (any :class:`VidaffectError`); the message names the stage
            or the setting.
    """
    from vidaffect.plugin_manager import get_registry

    ports = [("metrics_port", "metrics", config.engine.metrics_host, config.engine.metrics_port)]
    if config.engine.dashboard is not None:
        ports.append(
            ("dashboard", "the dashboard", config.engine.dashboard.host, config.engine.dashboard.port)
        )
    for key, what, host, port in ports:
        if not port:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError as exc:
                raise PluginError(
                    f"pipeline › {key}: cannot serve {what} on {host}:{port}: "
                    f"{exc.strerror} (another vidaffect run, or another program, uses it)"
                ) from None
    reg = get_registry()
    for stage in config.stages:
        try:
            reg.get(stage.kind, stage.type).preflight(stage.plugin)
        except VidaffectError as exc:
            raise PluginError(f"stage {stage.name!r}: {exc}") from exc  # its traceback with --debug


def _hwm(engine_hwm: int, live: bool, isolated_sink: bool) -> int:
    """High-water mark of a hop: one frame in live pipelines, except into a sink that is
    isolated from the others (its own queue absorbs its jitter; it holds up nobody)."""
    return engine_hwm if not live or isolated_sink else min(engine_hwm, LIVE_HWM)


def _needs_pixels(stage: StageConfig) -> bool:
    """Whether ``stage`` reads frames' pixels (every stage but a sink that says otherwise)."""
    from vidaffect.plugin_manager import get_registry

    if stage.kind != "sink":
        return True
    return bool(get_registry().get("sink", stage.type).wants_pixels(stage.plugin))


def face_patch(config: PipelineConfig, stage: StageConfig) -> dict[str, Any] | None:
    """The face patch to send ``stage`` instead of whole frames: with ``runner: ray`` and
    ``ray.face_patches``, to a classifier that names one (:meth:`~vidaffect.api.Classifier.face_patch`)
    when no sink reads pixels; else None."""
    from vidaffect.plugin_manager import get_registry

    engine = config.engine
    if stage.kind != "classifier" or engine.runner != "ray" or not engine.ray.face_patches:
        return None
    if any(_needs_pixels(sink) for sink in config.sinks):
        return None
    patch = get_registry().get("classifier", stage.type).face_patch(stage.plugin)
    return dataclasses.asdict(patch) if patch is not None else None


def build_specs(
    config: PipelineConfig, endpoint: Callable[[str], str], control: str, updates: str
) -> list[WorkerSpec]:
    """One :class:`WorkerSpec` per process, in flow order (sources first).

    ``endpoint(name)`` gives the address a worker binds (see :attr:`StageSpec.input`).

    Every source feeds the first processing stage; its stream id tags each of its frames.
    With tracking on, a stream's frames all go to the same worker of each processing stage
    (chosen by stream id): the detector worker holds that stream's tracker, the last stage's
    worker its smoothing state; without tracking, frames are load-balanced. Smoothing runs
    there, once per frame, so every sink gets the same smoothed labels.
    """
    engine = config.engine
    chain: list[StageConfig] = [s for s in (config.detector, config.classifier) if s]
    inputs: dict[str, list[str]] = {}
    for stage in chain + config.sinks:
        inputs[stage.name] = [endpoint(f"{stage.name}-{w}") for w in range(stage.options.workers)]
    threads = default_threads(config)
    streams = config.streams
    tracking = config.tracking.model_dump() if config.tracking else None
    first = [chain[0]] if chain else list(config.sinks)
    live = is_live(config)
    # live with several sinks: a busy sink misses frames instead of holding up the others
    isolated = live and len(config.sinks) > 1
    specs: list[WorkerSpec] = []
    stages = config.sources + chain + config.sinks
    for stage in stages:
        if stage.kind == "source":
            downstream, producers = first, 0
        elif stage in chain:
            i = chain.index(stage)
            downstream = [chain[i + 1]] if i + 1 < len(chain) else list(config.sinks)
            producers = 1 if i == 0 else chain[i - 1].options.workers
        else:
            downstream, producers = [], (chain[-1].options.workers if chain else 1)
        for w in range(stage.options.workers):
            spec = StageSpec(
                stage=stage.name,
                kind=stage.kind,
                worker=w,
                workers=stage.options.workers,
                plugin=stage.type,
                plugin_options=stage.plugin_dict,
                threads=stage.options.threads or (threads if stage.kind in ("detector", "classifier") else 1),
                batch=stage.options.batch,
                input=inputs[stage.name][w] if stage.name in inputs else None,
                downstream=tuple(d.name for d in downstream),
                # live: a busy sink misses frames instead of holding up the other sinks
                outputs_drop=tuple(isolated and d.kind == "sink" for d in downstream),
                outputs_hwm=tuple(_hwm(engine.hwm, live, isolated and d.kind == "sink") for d in downstream),
                # sinks that read only the metadata get frames without pixels
                outputs_pixels=tuple(_needs_pixels(d) for d in downstream),
                # between hosts, a classifier gets the squares it reads, not whole frames
                outputs_patch=tuple(face_patch(config, d) for d in downstream),
                # with tracking, a stream's frames keep to one worker of each processing stage:
                # its tracker (detector) and its smoothing state (the last one) live there
                sticky=tracking is not None and bool(downstream) and downstream[0] in chain,
                producers=producers,
                ordered=stage.options.workers == 1,
                # one in-order producer (per stream): a gap is a skipped frame, never late
                reorder_window=0 if live and producers == 1 else engine.reorder_window,
                live=live,
                hwm=_hwm(engine.hwm, live, isolated and stage.kind == "sink"),
                streams=tuple(streams),
                stream_id=stage.stream,
                tracking=tracking if stage.kind == "detector" else None,
                # smoothing runs once per frame, in the last stage before the sinks
                smoothing=tracking if chain and stage is chain[-1] else None,
                control=control,
                updates=updates,
                max_message_bytes=engine.max_message_bytes,
            )
            specs.append(WorkerSpec(stage, w, spec))
    return specs
