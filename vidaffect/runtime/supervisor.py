"""The supervisor: starts every stage process, watches it, stops the pipeline cleanly.

Life of a run: spawn all workers -> wait until each reports ``ready`` (plugins loaded, files
and sockets opened) -> broadcast ``go`` -> collect metrics until every process has exited.

* End of stream: the source sends EOS, every stage flushes it downstream, and each exits once
  the stages it feeds are done too (``release``); the run returns 0.
* Ctrl-C / SIGTERM: broadcast ``stop`` (the source ends the stream, the pipeline drains) ->
  wait ``stop_timeout`` -> ``abort`` and SIGTERM -> wait ``term_timeout`` -> SIGKILL.
  A second Ctrl-C skips the drain.
* A crashed stage (exception or killed process) is reported with its traceback; the
  pipeline aborts, or the worker is restarted when its stage has ``on_error: restart``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zmq

from vidaffect.config import PipelineConfig
from vidaffect.errors import StageError
from vidaffect.runtime.control import (
    Release,
    RunState,
    StateMessage,
    Stats,
    UpstreamEnded,
    Wiring,
    encode_control,
)
from vidaffect.runtime.dashboard_process import start_dashboard, stop_dashboard
from vidaffect.runtime.graph import Launch, WorkerSpec, build_specs, downstream_stages, preflight
from vidaffect.runtime.liveness import claim_run_dir, process_identity, reclaim_stale_run_dirs
from vidaffect.runtime.metrics import count_in_transit, in_hand, merge, next_seq_estimate, reconcile_killed
from vidaffect.runtime.runners import Runner, WorkerHandle, make_runner
from vidaffect.runtime.security import CONTROL_MAX_BYTES, UPDATE_MAX_BYTES, PeerAuth, RunKeys
from vidaffect.runtime.status import StatusLine
from vidaffect.runtime.transport import EndpointAllocator, bound_endpoint, cleanup_ipc

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 300.0
CONTROL_EVERY_S = 0.2
STATS_EVERY_S = 1.0
"""How often the run's counters go to the sinks that show them (``stats`` control message)."""
RELEASE_EVERY_S = 0.02


@dataclass(frozen=True)
class StageFailure:
    """A stage worker that failed: its label (``detector`` or ``detector[1]``), the message, the
    traceback of a crash (empty for a user-facing error), and whether it was restarted
    (``on_error: restart``) rather than ending the run."""

    label: str
    message: str
    traceback: str = ""
    restarted: bool = False


@dataclass
class RunResult:
    """Outcome of a pipeline run.

    Attributes:
        exit_code: 0 on a clean end of stream or requested stop, 1 on a stage failure.
        stages: merged metrics per stage name (see :class:`~.metrics.StageMetrics`).
        errors: every stage failure (:class:`StageFailure`), restarted ones included.
        wall_s: seconds from ``go`` to the last process exit.
        source_info: what the (first) source reported when it opened.
        sources_info: what each source reported, by stream id.
        interrupted: the run was stopped by a signal before its end of stream.
        warnings: user-facing lines about data that did not come through although the run
            succeeded (a truncated video file's undecodable frames).
        startup_s: seconds from the call to every stage being ready (processes started,
            models loaded); 0 when the run never got there.
        placement: where each worker ran when the run started, with a runner that places
            them on several hosts (worker label -> ``{"ip", "node_id", "pid"}``); empty for
            the local runner.
    """

    exit_code: int
    stages: dict[str, dict[str, Any]]
    errors: list[StageFailure] = field(default_factory=list)
    wall_s: float = 0.0
    source_info: dict[str, Any] = field(default_factory=dict)
    sources_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    startup_s: float = 0.0
    placement: dict[str, dict[str, Any]] = field(default_factory=dict)


def unreadable_warnings(
    stages: dict[str, dict[str, Any]], sources: dict[str, dict[str, Any]], streams: dict[str, str]
) -> list[str]:
    """A warning per source stage whose file announced frames it could not decode.

    Args:
        streams: source stage name -> its stream id."""
    out = []
    for name, m in stages.items():
        n = m.get("unreadable") or 0
        if n:
            stream = streams.get(name, "")
            what = sources.get(stream, {}).get("description", "the file")
            got = m.get("frames_in", 0)
            out.append(
                f"stage '{name}': {what} announced {got + n} frames but only {got} could be decoded "
                f"({n} unreadable: the file is probably truncated or damaged)"
            )
    return out


def intruder_warnings(
    stages: dict[str, dict[str, Any]], refused_by_supervisor: int, rejected_updates: int
) -> list[str]:
    """Warnings about processes outside the run that tried to talk to it: connections refused
    for lack of the run's key, and reports from processes the supervisor did not start."""
    out = []
    refused = {name: m.get("refused") or 0 for name, m in stages.items()}
    refused["supervisor"] = refused_by_supervisor
    if any(refused.values()):
        where = ", ".join(f"{name}: {n}" for name, n in refused.items() if n)
        out.append(
            f"connections without the run's key were refused ({where}); some process on "
            "the network tried to reach the pipeline's ports"
        )
    if rejected_updates:
        out.append(f"{rejected_updates} updates from processes this run did not start were ignored")
    return out


@dataclass
class _Worker:
    ws: WorkerSpec
    proc: WorkerHandle | None = None
    ready: bool = False
    done: bool = False
    restarts: int = 0
    incarnation: int = 0  # the current start's; updates of others are refused or (metrics) kept
    incarnations: set[int] = field(default_factory=set)
    metrics_by_incarnation: dict[int, dict[str, Any]] = field(default_factory=dict)
    metrics_at: dict[int, float] = field(default_factory=dict)  # when each last arrived (monotonic)
    endpoint: str | None = None  # where its input listens, as it reported (``bound``)


def plugin_preloads(config: PipelineConfig) -> list[str]:
    """The ``preload`` modules of the plugins of ``config``'s stages, in stage order."""
    from vidaffect.plugin_manager import get_registry

    reg = get_registry()
    return [m for stage in config.stages for m in reg.get(stage.kind, stage.type).preload]


class Supervisor:
    """Runs one pipeline. Use :meth:`run`; it blocks until the pipeline has stopped."""

    def __init__(
        self,
        config: PipelineConfig,
        show_status: bool | None = None,
    ) -> None:
        self.config = config
        self.engine = config.engine
        self.show_status = self.engine.status if show_status is None else show_status
        self.runner: Runner | None = None
        self.state = RunState.GO
        self.errors: list[StageFailure] = []
        self.stop_requested = 0
        self._deadline: float | None = None
        self._termed = False
        self.eos_totals: dict[str, int] = {}
        self._upstream_gone: dict[str, float] = {}
        self._downstream: dict[str, set[str]] = {}
        self._last_release = 0.0
        self.rejected_updates = 0
        self._incarnations = 0
        self._killed: set[str] = set()  # stages with a worker that died without reporting done
        self.wiring_version = 0
        self.keys: RunKeys | None = None
        if self.engine.transport == "tcp" and self.engine.auth == "curve":
            key_file = self.engine.curve_secret_key
            self.keys = RunKeys.load(key_file) if key_file else RunKeys.generate()

    # -- signals -------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_requested += 1

    # -- process management --------------------------------------------------------------
    def _spawn(self, w: _Worker) -> None:
        w.ready, w.done = False, False
        self._incarnations += 1
        w.incarnation = self._incarnations
        w.incarnations.add(w.incarnation)
        launch = Launch(
            environ=dict(os.environ),
            supervisor=process_identity(),
            run_dir=str(self.run_dir),
            curve=self.keys.to_spec() if self.keys is not None else None,
            incarnation=w.incarnation,
            seq_from=next_seq_estimate(
                [(snap, w.metrics_at[i]) for i, snap in w.metrics_by_incarnation.items()], time.monotonic()
            ),
        )
        assert self.runner is not None
        try:
            w.proc = self.runner.start(w.ws, launch)  # kept only once started: clean-up joins it
        except StageError as exc:  # another host's runner found no place for it
            w.done = True
            self.errors.append(StageFailure(w.ws.label, str(exc)))
            self._begin_abort()

    def _handle_update(
        self, msg: dict[str, Any], workers: dict[tuple[str, int], _Worker], result: RunResult
    ) -> None:
        stage, worker = msg.get("stage"), msg.get("worker")
        w = workers.get((stage, worker)) if isinstance(stage, str) and isinstance(worker, int) else None
        incarnation = msg.get("incarnation")
        if w is None or incarnation not in w.incarnations:  # not from a process this run started
            self.rejected_updates += 1
            return
        kind = msg.get("type")
        if kind == "metrics" and isinstance(msg.get("metrics"), dict):
            w.metrics_by_incarnation[incarnation] = msg["metrics"]  # all incarnations count
            w.metrics_at[incarnation] = time.monotonic()
            return
        if incarnation != w.incarnation:
            return
        if kind == "bound":
            endpoint = msg.get("input")
            if endpoint != w.endpoint and isinstance(endpoint, str):
                w.endpoint = endpoint
                self.wiring_version += 1
        elif kind == "ready":
            w.ready = True
            if "source_info" in msg:
                result.sources_info[str(w.ws.spec.stream_id)] = msg["source_info"]
                result.source_info = result.sources_info.get(self.config.streams[0], msg["source_info"])
        elif kind == "error":
            self._failure(w, msg.get("error", "error"), msg.get("traceback", ""))
        elif kind == "done":
            w.done = True
            if w.ws.stage.kind == "source":
                self.eos_totals.update(msg.get("eos") or {})

    def _failure(self, w: _Worker, message: str, tb: str) -> None:
        opts = w.ws.stage.options
        if opts.on_error == "restart" and w.restarts < opts.max_restarts and self.state == RunState.GO:
            w.restarts += 1
            message = f"{message} (restarting, {w.restarts}/{opts.max_restarts})"
            log.warning("stage %s failed: %s\n%s", w.ws.label, message, tb)
            self.errors.append(StageFailure(w.ws.label, message, tb, restarted=True))
            w.ws.spec = dataclasses.replace(w.ws.spec, restarts=w.restarts)
            if w.proc is not None and w.proc.is_alive():
                w.proc.join(5)
            self._spawn(w)
            return
        self.errors.append(StageFailure(w.ws.label, message, tb))
        self._begin_abort()

    def _begin_stop(self) -> None:
        if self.state == RunState.GO:
            self.state = RunState.STOP
            self._deadline = time.monotonic() + self.engine.stop_timeout

    def _begin_abort(self) -> None:
        if self.state != RunState.ABORT:
            self.state = RunState.ABORT
            self._deadline = time.monotonic() + self.engine.term_timeout

    def _escalate(self, workers: list[_Worker]) -> None:
        if self._deadline is None or time.monotonic() < self._deadline:
            return
        alive = [w.proc for w in workers if w.proc is not None and w.proc.is_alive()]
        if self.state == RunState.STOP:
            self.state = RunState.ABORT
            self._deadline = time.monotonic() + self.engine.term_timeout
            return
        if not self._termed:
            for proc in alive:
                proc.terminate()
            self._termed = True
            self._deadline = time.monotonic() + self.engine.term_timeout
        else:
            for proc in alive:
                proc.kill()
            self._deadline = time.monotonic() + 60.0

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run the pipeline to its end, a stop request or a failure.

        Raises:
            PluginError: a plugin's preflight check failed (no stage was started).
        """
        t_start = time.monotonic()
        self.runner = make_runner(self.config, plugin_preloads(self.config))  # imports overlap the checks
        try:
            return self._run(t_start, self.runner)
        finally:
            self.runner.close()

    def _run(self, t_start: float, runner: Runner) -> RunResult:
        preflight(self.config)
        reclaim_stale_run_dirs(Path(tempfile.gettempdir()))  # left by a supervisor that was killed
        run_dir = self.run_dir = Path(tempfile.mkdtemp(prefix="vidaffect-"))
        claim_run_dir(run_dir)
        alloc = EndpointAllocator(self.engine.transport, run_dir, runner.host, self.engine.port_base)
        ctx = zmq.Context()
        auth = PeerAuth(self.keys)
        control = self.control = auth.server(ctx.socket(zmq.PUB), CONTROL_MAX_BYTES)
        control.setsockopt(zmq.LINGER, 0)
        updates = auth.server(ctx.socket(zmq.PULL), UPDATE_MAX_BYTES)
        updates.setsockopt(zmq.LINGER, 0)
        control.bind(alloc("control"))
        updates.bind(alloc("updates"))
        control_ep, updates_ep = bound_endpoint(control), bound_endpoint(updates)
        specs = build_specs(self.config, alloc, control_ep, updates_ep)
        workers = {(ws.spec.stage, ws.worker): _Worker(ws) for ws in specs}
        self._downstream = downstream_stages(specs)
        result = RunResult(exit_code=0, stages={})
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self.status: StatusLine | None = None
        self.exporter = self._exporter()
        dashboard = start_dashboard(self.config)
        self.t_go = time.monotonic()
        try:
            for w in workers.values():  # in flow order: a runner may place a stage beside its source
                self._spawn(w)
            log.info("loading models (%d stage processes)...", len(workers))
            self.state = RunState.STARTING
            self._loop(workers, updates, auth, result, t_start)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            for w in workers.values():
                if w.proc is not None and w.proc.is_alive():
                    w.proc.kill()
                if w.proc is not None:
                    w.proc.join(5)
            if self.status is not None:
                self.status.close()
            if self.exporter is not None:
                self.exporter.close()
            stop_dashboard(dashboard)
            control.close()
            updates.close()
            refused = auth.refused()
            auth.close()
            ctx.term()
            cleanup_ipc(run_dir)
        return self._result(result, workers, refused)

    def _exporter(self) -> Any:
        """The Prometheus exporter when ``pipeline.metrics_port`` is set."""
        if not self.engine.metrics_port:
            return None
        from vidaffect.runtime.prom import PrometheusExporter

        return PrometheusExporter(self.engine.metrics_port, self.engine.name, self.engine.metrics_host)

    def _loop(
        self,
        workers: dict[tuple[str, int], _Worker],
        updates: zmq.Socket[bytes],
        auth: PeerAuth,
        result: RunResult,
        t_start: float,
    ) -> None:
        """Watch the run until every worker has exited."""
        from vidaffect.plugin_manager import get_registry

        started = time.monotonic()
        last_control = last_stats = 0.0
        stats_wanted = any(get_registry().get("sink", st.type).wants_run_stats for st in self.config.sinks)
        while True:
            now = time.monotonic()
            self._handle_stop_requests(result)
            if self.state == RunState.STARTING:
                self._check_started(workers, result, t_start, now - started)
            if now - last_control >= CONTROL_EVERY_S:  # also the stages' heartbeat
                self.control.send(encode_control(StateMessage(self.state)))
                self._send_wiring(workers)
                last_control = now
            auth.refused()  # reads the monitor events as they come
            if updates.poll(50):
                self._drain_updates(updates, workers, result)
            self._reap(workers, updates, result)
            send_stats = stats_wanted and self.state == RunState.GO and now - last_stats >= STATS_EVERY_S
            self._publish_counters(workers, send_stats)
            last_stats = now if send_stats else last_stats
            if all(w.done and w.proc is not None and not w.proc.is_alive() for w in workers.values()):
                return
            if self.state in (RunState.GO, RunState.STOP):
                self._notify_upstream_ended(self.control, workers)
                self._release_finished(self.control, workers)
            self._escalate(list(workers.values()))

    def _send_wiring(self, workers: dict[tuple[str, int], _Worker]) -> None:
        """Where every worker's input listens, once all have bound (repeated: a worker that
        starts or restarts later gets it too; stages apply a new version only)."""
        inputs: dict[str, list[str]] = {}
        for w in workers.values():
            if w.ws.spec.input is None:
                continue
            if w.endpoint is None:
                return
            inputs.setdefault(w.ws.spec.stage, []).append(w.endpoint)
        self.control.send(encode_control(Wiring(self.wiring_version, inputs)))

    def _handle_stop_requests(self, result: RunResult) -> None:
        """Ctrl-C / SIGTERM: the first stops the sources (or aborts a run still starting), a
        second aborts."""
        if not self.stop_requested:
            return
        if self.state in (RunState.STARTING, RunState.GO) and self.stop_requested == 1:
            result.interrupted = True
            if self.state == RunState.STARTING:
                self._begin_abort()
            else:
                self._begin_stop()
        elif self.stop_requested > 1:
            result.interrupted = True
            self._begin_abort()

    def _check_started(
        self, workers: dict[tuple[str, int], _Worker], result: RunResult, t_start: float, waited: float
    ) -> None:
        """``GO`` once every worker is ready (and the status line starts); abort after
        :data:`STARTUP_TIMEOUT_S`."""
        if all(w.ready for w in workers.values()):
            self.state = RunState.GO
            self.t_go = time.monotonic()
            result.startup_s = self.t_go - t_start
            log.info("started in %.1f s", result.startup_s)
            assert self.runner is not None
            placed = self.runner.placement()
            result.placement = dict(placed)
            if placed:
                from vidaffect.runtime.ray_runner import placement_lines

                log.info("placement:\n  %s", "\n  ".join(placement_lines(placed)))
            if self.show_status:
                counts = [i.get("frame_count") for i in result.sources_info.values()]
                self.status = StatusLine(
                    None if None in counts else sum(int(c or 0) for c in counts),
                    {st.name: st.kind for st in self.config.stages},
                )
        elif waited > STARTUP_TIMEOUT_S:
            late = ", ".join(w.ws.label for w in workers.values() if not w.ready)
            self.errors.append(
                StageFailure(
                    "supervisor", f"stages did not become ready in {STARTUP_TIMEOUT_S:.0f} s: {late}"
                )
            )
            self._begin_abort()

    def _reap(
        self, workers: dict[tuple[str, int], _Worker], updates: zmq.Socket[bytes], result: RunResult
    ) -> None:
        """Workers whose process exited: done, and a failure unless it said it was done."""
        for w in workers.values():
            if w.proc is None or w.proc.is_alive() or w.done:
                continue
            code = w.proc.exitcode
            if self._termed:
                w.done = True
                continue
            time.sleep(0.05)  # a final update may still be in flight
            self._drain_updates(updates, workers, result)
            if not w.done:
                w.done = True
                snap = w.metrics_by_incarnation.get(w.incarnation)
                if snap:  # killed: what it held at its last update never went on
                    snap["dropped"] += in_hand(snap["frames_in"], snap["frames_out"], snap["dropped"])
                self._killed.add(w.ws.spec.stage)
                self._failure(w, f"process exited with code {code} without reporting", "")

    def _publish_counters(self, workers: dict[tuple[str, int], _Worker], send_stats: bool) -> None:
        """The merged counters to the status line, Prometheus and (``send_stats``) the sinks."""
        if self.status is None and self.exporter is None and not send_stats:
            return
        merged = self._merged(workers)
        if self.status is not None:
            self.status.update(merged)
        if self.exporter is not None:
            self.exporter.update(merged)
        if send_stats:
            self.control.send(encode_control(Stats(merged)))

    def _result(self, result: RunResult, workers: dict[tuple[str, int], _Worker], refused: int) -> RunResult:
        """The run's counters, warnings, failures and exit code."""
        result.wall_s = time.monotonic() - self.t_go
        result.stages = self._merged(workers)
        reconcile_killed(result.stages, self._downstream, self._killed)
        count_in_transit(result.stages, self._downstream)
        result.warnings = unreadable_warnings(
            result.stages, result.sources_info, {st.name: str(st.stream) for st in self.config.sources}
        )
        result.warnings += intruder_warnings(result.stages, refused, self.rejected_updates)
        result.errors = self.errors
        result.exit_code = 1 if any(not e.restarted for e in self.errors) else 0
        return result

    def _release_finished(self, control: zmq.Socket, workers: dict[tuple[str, int], _Worker]) -> None:
        """Let a stage that has finished exit once every stage it feeds is done too.

        A finished stage keeps its output connections open until then (see
        :meth:`vidaffect.runtime.stage.StageContext.wait_released`): frames still in the socket
        buffers of a consumer at its high-water mark are lost if the sender disconnects first.
        A consumer reports done after the EOS of every producer (the last message each sent),
        or dies; either way nothing of this stage's is left in transit.
        """
        now = time.monotonic()
        if now - self._last_release < RELEASE_EVERY_S:
            return
        self._last_release = now
        done = _stages_done(workers)
        waiting = {name: False for name in done}
        for (name, _), w in workers.items():
            waiting[name] = waiting[name] or (w.done and w.proc is not None and w.proc.is_alive())
        for name, down in self._downstream.items():
            if waiting[name] and all(done[d] for d in down):
                control.send(encode_control(Release(name)))

    def _notify_upstream_ended(self, control: zmq.Socket, workers: dict[tuple[str, int], _Worker]) -> None:
        """Tell a stage whose producers have all finished (reported done, or died) that its
        streams are over.

        Normally EOS arrives on the data path long before; this covers an EOS lost with a
        crashed (and restarted) worker, so the pipeline finishes instead of waiting forever.
        A producer waiting for its release counts as finished: the restarted worker would
        otherwise wait for an EOS that went to its predecessor, and the producer for it.
        """
        if not self.eos_totals:
            return
        # done: reported done (it may still be alive, waiting for its release) or died
        finished = _stages_done(workers)
        order = list(finished)
        chain = [n for n in order if self.config.stage(n).kind != "sink"]
        now = time.monotonic()
        for i, name in enumerate(order):
            upstream = chain[:i] if name in chain else chain
            if not upstream or finished[name] or not all(finished[u] for u in upstream):
                continue
            since = self._upstream_gone.setdefault(name, now)
            if now - since > 2.0 and int((now - since) * 5) % 5 == 0:
                control.send(encode_control(UpstreamEnded(name, dict(self.eos_totals))))

    def _drain_updates(
        self, updates: zmq.Socket, workers: dict[tuple[str, int], _Worker], result: RunResult
    ) -> None:
        while True:
            try:
                msg = msgpack.unpackb(updates.recv(zmq.NOBLOCK), raw=False)
            except zmq.Again:
                return
            except Exception:  # not msgpack: not from a stage
                self.rejected_updates += 1
                continue
            if isinstance(msg, dict):
                self._handle_update(msg, workers, result)
            else:
                self.rejected_updates += 1

    @staticmethod
    def _merged(workers: dict[tuple[str, int], _Worker]) -> dict[str, dict[str, Any]]:
        by_stage: dict[str, list[dict[str, Any]]] = {}
        for w in workers.values():
            snaps = list(w.metrics_by_incarnation.values())
            by_stage.setdefault(w.ws.spec.stage, []).extend(snaps)
        return {name: merge(snaps) for name, snaps in by_stage.items()}


def _stages_done(workers: dict[tuple[str, int], _Worker]) -> dict[str, bool]:
    """Stage name (in flow order) -> whether every worker reported done or died."""
    done: dict[str, bool] = {}
    for (name, _), w in workers.items():
        done[name] = done.get(name, True) and w.done
    return done


def run_pipeline(config: PipelineConfig, show_status: bool | None = None) -> RunResult:
    """Run ``config`` to completion; see :class:`Supervisor`. Logs (``vidaffect`` logger, INFO)
    when the stage processes start loading their models and when they are all ready."""
    return Supervisor(config, show_status).run()


def raise_for_errors(result: RunResult) -> None:
    """Raise :class:`StageError` naming every failed stage, with tracebacks of crashes."""
    hard = [
        f"stage {e.label} failed: {e.message}\n{e.traceback}".rstrip()
        for e in result.errors
        if not e.restarted
    ]
    if hard:
        raise StageError("\n".join(hard))


__all__ = ["RunResult", "StageFailure", "Supervisor", "run_pipeline", "raise_for_errors"]
