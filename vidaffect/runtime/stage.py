"""Entry point of a stage process: build the plugin, run its loop, report to the supervisor.

A stage process gets a typed spec and launch details (:class:`.graph.StageSpec`,
:class:`.graph.Launch`) and creates its own sockets: an input PULL, bound where it runs and
reported to the supervisor (``bound``), a SUB on the supervisor's control channel and a PUSH to
its updates channel (bound, ready, counters, done, errors). Once its plugin is open it waits for
the supervisor's :class:`~.control.Wiring` and connects one :class:`~.transport.Fanout` per
downstream stage, then reports ``ready``. Control messages are typed msgpack messages
(:mod:`.control`):

* state ``go``: start (a source waits for it, so no frame is sent before every stage is ready);
* state ``stop``: a source stops reading and sends EOS, so the pipeline drains and files close;
* state ``abort``: every stage stops now, closes its plugin and exits;
* ``release``, ``upstream_ended``: the end of a run (see the supervisor);
* ``stats``: the run's per-stage counters, once a second, when a sink asks for them
  (:attr:`vidaffect.api.Sink.wants_run_stats`);
* ``wiring``: where the workers of every stage listen (again when one moved).

A stage started without its supervisor's process identity (a Ray actor on another host) takes
the supervisor for dead when no control message came for :data:`HEARTBEAT_TIMEOUT_S`.

SIGINT is ignored (the supervisor handles Ctrl-C for the whole pipeline); SIGTERM ends the
loop through the same path as ``abort``, so ``close()`` still runs and files are finalised.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

import msgpack
import zmq

from vidaffect.api import Plugin, Source
from vidaffect.errors import VidaffectError
from vidaffect.frames import Frame
from vidaffect.runtime.appliers import Applier, make_applier
from vidaffect.runtime.codec import MessageError, decode, encode_frame, encode_patches
from vidaffect.runtime.control import ControlError, Release, StateMessage, Stats, Wiring, decode_control
from vidaffect.runtime.graph import Launch, StageSpec
from vidaffect.runtime.liveness import is_alive, process_identity, start_watchdog
from vidaffect.runtime.logs import configure, debug_enabled
from vidaffect.runtime.metrics import REPORT_EVERY_S, StageMetrics, in_hand
from vidaffect.runtime.reorder import Reorderer
from vidaffect.runtime.security import CONTROL_MAX_BYTES, PeerAuth, RunKeys
from vidaffect.runtime.source_loop import SourceLoop
from vidaffect.runtime.transport import SOCKET_BUFFER_BYTES, Fanout, bound_endpoint, pull_socket, push_socket

SUPERVISOR_CHECK_S = 0.25  # how often a stage checks that its supervisor is alive
HEARTBEAT_TIMEOUT_S = 15.0
"""Seconds without a control message (the supervisor repeats the run state every 0.2 s)
after which a stage that cannot see its supervisor's process exits."""
WIRING_TIMEOUT_S = 300.0
"""Seconds a started stage waits for the supervisor's wiring before it gives up."""


class Terminated(Exception):
    """SIGTERM received."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _set_threads(n: int, kind: str) -> None:
    """Threads of this process: OpenCV always, torch only in compute stages (sources and
    sinks never import it)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # failures are reported by vidaffect
    try:
        import cv2

        cv2.setNumThreads(n)
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # imported before the env
    except ImportError:
        pass
    if kind in ("detector", "classifier"):
        import torch

        torch.set_num_threads(n)


class StageContext:
    """Sockets and bookkeeping shared by the stage loops."""

    def __init__(self, spec: StageSpec, launch: Launch | None = None) -> None:
        self.spec = spec
        self.launch = launch
        self.ctx = zmq.Context()
        self.auth = PeerAuth(RunKeys.from_spec(launch.curve) if launch is not None and launch.curve else None)
        self.updates = self.auth.client(self.ctx.socket(zmq.PUSH))
        self.updates.setsockopt(zmq.LINGER, 2000)
        self.updates.connect(spec.updates)
        self.control = self.auth.client(self.ctx.socket(zmq.SUB), CONTROL_MAX_BYTES)
        self.control.setsockopt(zmq.SUBSCRIBE, b"")
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.connect(spec.control)
        self.metrics = StageMetrics()
        self.plugin: Plugin | None = None  # set once built: its counters go with the metrics
        self.run_stats: dict[str, Any] | None = None  # the newest "stats" control message
        self.source_info: dict[str, Any] = {}  # a source's SourceInfo once opened
        self.state = {"go": False, "stop": False, "abort": False}
        self.upstream_ended: dict[str, int] | None = None
        self.released = False
        if launch is None:
            self.supervisor: tuple[int, int | None] | None = process_identity(os.getppid())
        else:
            self.supervisor = launch.supervisor  # None: watched through the control channel
        self._supervisor_checked = 0.0
        self._last_control = time.monotonic()
        self.wiring_version = 0
        self.eos_totals: dict[str, int] = {}
        self._last_update = 0.0
        buf = None if spec.live else SOCKET_BUFFER_BYTES
        max_bytes = spec.max_message_bytes
        self.inp = (
            pull_socket(self.ctx, spec.input, spec.hwm, buf, self.auth, max_bytes) if spec.input else None
        )
        self.incarnation = launch.incarnation if launch is not None else 0
        self.send_update("bound", input=bound_endpoint(self.inp) if self.inp is not None else None)
        self.outputs = [
            Fanout(
                functools.partial(self._push_socket, hwm=hwm, buffer_bytes=buf),
                self.should_abort,
                drop_when_full=drop,
            )
            for drop, hwm in zip(spec.outputs_drop, spec.outputs_hwm)
        ]
        # per output, how frames go: with pixels or not (bool), or face patches (margin, side, gray)
        self.output_forms: list[bool | tuple[float, int, bool]] = [
            (p["margin"], p["side"], p["gray"]) if p else px
            for px, p in zip(spec.outputs_pixels, spec.outputs_patch)
        ]
        self.sticky = spec.sticky

    def _push_socket(self, endpoint: str, hwm: int, buffer_bytes: int | None) -> zmq.Socket:
        return push_socket(self.ctx, endpoint, hwm, buffer_bytes, self.auth)

    def send_update(self, kind: str, **fields: Any) -> None:
        msg = {
            "type": kind,
            "stage": self.spec.stage,
            "worker": self.spec.worker,
            "pid": os.getpid(),
            "incarnation": self.incarnation,
            **fields,
        }
        self.updates.send(msgpack.packb(msg, use_bin_type=True))

    def connect_outputs(self) -> None:
        """Wait for the supervisor's wiring and connect to the workers of every downstream
        stage (at once when it already came).

        Raises:
            Terminated: aborted (or the supervisor died) while waiting.
            VidaffectError: no wiring within :data:`WIRING_TIMEOUT_S`.
        """
        deadline = time.monotonic() + WIRING_TIMEOUT_S
        while self.outputs and not self.wiring_version:
            if self._poll():
                raise Terminated()
            if time.monotonic() > deadline:
                raise VidaffectError(f"no wiring from the supervisor in {WIRING_TIMEOUT_S:.0f} s")
            self.control.poll(20)
        for out in self.outputs:
            out.apply_pending()

    def _rewire(self, wiring: Wiring) -> None:
        """Point the outputs at the workers of ``wiring`` (applied before the next send)."""
        if wiring.version <= self.wiring_version:
            return
        missing = [d for d in self.spec.downstream if d not in wiring.inputs]
        if missing:
            self.metrics.malformed += 1
            return
        self.wiring_version = wiring.version
        for out, stage in zip(self.outputs, self.spec.downstream):
            out.reconnect_later(wiring.inputs[stage])

    def maybe_update(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_update >= REPORT_EVERY_S:
            self._last_update = now
            self.metrics.skipped = sum(out.skipped for out in self.outputs)
            self.metrics.refused = self.auth.refused()
            snapshot = self.metrics.snapshot()
            if self.plugin is not None:
                snapshot.update({f"plugin_{k}": int(v) for k, v in self.plugin.counters().items()})
            self.send_update("metrics", metrics=snapshot)

    def poll_control(self) -> None:
        while True:
            try:
                msg = self.control.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                cm = decode_control(msg)
            except ControlError:
                self.metrics.malformed += 1
                continue
            self._last_control = time.monotonic()
            if isinstance(cm, StateMessage):
                if cm.state.value in self.state:
                    self.state[cm.state.value] = True
            elif isinstance(cm, Stats):  # the run's counters, for a sink that shows them
                self.run_stats = cm.stages
            elif isinstance(cm, Release):
                self.released = self.released or cm.stage == self.spec.stage
            elif isinstance(cm, Wiring):
                self._rewire(cm)
            elif cm.stage == self.spec.stage:  # UpstreamEnded: a missing EOS was lost in a crash
                self.upstream_ended = cm.totals

    def _poll(self) -> bool:
        """Read control messages; True on abort (also when the supervisor died)."""
        self.poll_control()
        now = time.monotonic()
        if now - self._supervisor_checked >= SUPERVISOR_CHECK_S:
            self._supervisor_checked = now
            if self.supervisor is not None:
                gone = not is_alive(self.supervisor)  # the supervisor died (SIGKILL): don't linger
            else:
                gone = now - self._last_control > HEARTBEAT_TIMEOUT_S
            if gone:
                self.state["abort"] = True
        return self.state["abort"]

    def should_abort(self) -> bool:
        self.maybe_update()
        return self._poll()

    def send_all(self, parts: list[Any], key: int | None = None) -> bool:
        """Send to one worker of each downstream stage (``key``: always the same worker)."""
        return all(out.send(parts, key) for out in self.outputs)

    def send_frame(self, frame: Frame) -> bool:
        """Send ``frame`` to one worker of each downstream stage: the same worker for every
        frame of a stream when this stage is sticky; without its pixels to sinks that need
        none, as face patches to a classifier that takes them (each form encoded once)."""
        key = self.spec.stream_key(frame.stream) if self.sticky else None
        encoded: dict[Any, list[Any]] = {}
        ok = True
        for out, form in zip(self.outputs, self.output_forms):
            if form not in encoded:
                encoded[form] = (
                    encode_frame(frame, pixels=form)
                    if isinstance(form, bool)
                    else encode_patches(frame, *form)
                )
            parts = encoded[form]
            self.metrics.bytes_out += sum(memoryview(p).nbytes for p in parts)
            ok = out.send(parts, key) and ok
        return ok

    def broadcast(self, parts: list[Any]) -> bool:
        return all(out.broadcast(parts) for out in self.outputs)

    def wait_released(self) -> None:
        """Keep the output connections open until the supervisor's ``release`` (every stage
        this one feeds is done), an abort, or the supervisor's death. Sends no metrics, so
        the final snapshot (sent before) stays final.

        ZeroMQ counts a message as sent once it is in the kernel's socket buffer. A consumer
        at its high-water mark leaves it there, and if the sender disconnects first, the
        consumer drops it: in a plain PUSH/PULL check with ``hwm`` 1 and 48 KiB messages, the
        last message and EOS were lost; in a pipeline with 64 px frames, 4 of 49 frames.
        """
        while self.outputs and not self.released and not self._poll():
            self.control.poll(20)

    def close(self, deliver: bool) -> None:
        """Close every socket; with ``deliver`` wait until queued frames and EOS reach the
        next stage (a clean end), else drop them at once (abort, SIGTERM)."""
        for out in self.outputs:
            out.close(linger_ms=-1 if deliver else 0)
        if self.inp is not None:
            self.inp.close()
        self.control.close()
        self.updates.close()
        self.auth.close()
        self.ctx.term()


def run_processor(sc: StageContext, apply: Applier) -> None:
    """Receive frames, apply the detector/classifier/sink plugin, pass them on in order.

    Frames already queued on the input (up to the stage's ``batch``) are taken together, so
    a classifier sees the faces of several frames in one forward pass; nothing waits for a
    batch to fill.
    """
    spec = sc.spec
    assert sc.inp is not None
    reorder = Reorderer(
        spec.producers,
        spec.reorder_window,
        ordered=spec.ordered,
        resync=spec.restarts > 0,
    )
    poller = zmq.Poller()
    poller.register(sc.inp, zmq.POLLIN)
    poller.register(sc.control, zmq.POLLIN)
    m = sc.metrics
    m.start_clock()
    streams = list(spec.streams)
    idle_since = time.monotonic()
    while not reorder.all_done(streams):
        events = dict(poller.poll(100))
        if sc.should_abort():
            return
        if sc.inp not in events:
            if sc.upstream_ended is not None and time.monotonic() - idle_since > 0.5:
                if not apply(reorder.force_end(sc.upstream_ended)):
                    return
            continue
        idle_since = time.monotonic()
        ready: list[tuple[dict[str, Any], Frame | None]] = []
        for _ in range(spec.batch):
            try:
                parts = sc.inp.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            try:
                header, frame = decode(parts)
            except MessageError:
                m.malformed += 1
                continue
            if header["stream"] not in streams:
                m.malformed += 1
                continue
            if header["kind"] == "outage":  # not a frame: on at once, outside the frame order
                if not apply.outage(header):
                    return
                continue
            if frame is not None:
                m.frames_in += 1
            ready.extend(reorder.push(header, frame))
        if not apply(ready):
            return
        m.lost, m.dropped = reorder.lost, reorder.late  # late: received after its turn, not passed on
    m.lost, m.dropped = reorder.lost, reorder.late  # losses found when the stream was force-ended


def _count_in_flight_as_dropped(m: StageMetrics) -> None:
    """After an abort, SIGTERM or a failure: the frames this stage had received and not yet
    passed on (in a batch, in the reorder window, in a source's hand) are dropped here, and
    counted, so that ``frames_in == frames_out + dropped`` holds for every stage. On a clean
    end nothing is in flight, and nothing is added."""
    m.dropped += in_hand(m.frames_in, m.frames_out, m.dropped)


def stage_main(spec: StageSpec, launch: Launch | None = None) -> None:
    """Process entry point (``multiprocessing`` target): the supervisor's environment, signal
    handling and a watchdog on the supervisor, then :func:`run_stage`; exits with its code."""
    if launch is not None:  # the supervisor's environment now, not the fork server's at its start
        os.environ.clear()
        os.environ.update(launch.environ)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    in_loop = threading.Event()
    if launch is not None and launch.supervisor:  # exit even while imports and models load (no orphans)
        start_watchdog(launch.supervisor, in_loop)
    code = run_stage(spec, launch, in_loop)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_stage(spec: StageSpec, launch: Launch | None, in_loop: threading.Event | None = None) -> int:
    """Run one stage worker in this process to its end and return its exit code (0: clean,
    1: the plugin failed, after an ``error`` update with the message).

    Opens the plugin, connects the outputs once the supervisor's wiring comes, reports
    ``ready``, and runs the source or processing loop; closes the plugin and reports ``done``
    whatever happened. ``in_loop`` is set once the loop runs (the watchdog's cue).
    """
    configure()  # as the command that started the run (--debug or not)
    in_loop = in_loop or threading.Event()
    _set_threads(spec.threads, spec.kind)
    from vidaffect.plugin_manager import get_registry

    sc = StageContext(spec, launch)
    plugin: Plugin | None = None
    code = 0
    terminated = False
    try:
        cls: type[Plugin] = get_registry().get(spec.kind, spec.plugin)
        plugin = sc.plugin = cls(cls.Config(**spec.plugin_options))
        plugin.streams = list(spec.streams)
        plugin.restarts = spec.restarts
        if isinstance(plugin, Source):
            info = plugin.open()
            opened_at = time.monotonic()
            sc.source_info = dict(info.__dict__)
            sc.connect_outputs()
            sc.send_update("ready", source_info=sc.source_info)
            in_loop.set()
            SourceLoop(sc, plugin, opened_at).run()
        else:
            plugin.open()  # type: ignore[attr-defined]
            applier = make_applier(sc, plugin)  # tracking / smoothing set up before "ready"
            sc.connect_outputs()
            sc.send_update("ready")
            in_loop.set()
            run_processor(sc, applier)
    except Terminated:
        terminated = True
    except VidaffectError as exc:  # a user-facing problem (no camera, unwritable path): its message
        code = 1
        sc.send_update("error", error=str(exc), traceback=traceback.format_exc() if debug_enabled() else "")
    except BaseException as exc:  # report everything, including KeyboardInterrupt-like exits
        code = 1
        sc.send_update("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    finally:
        try:
            if plugin is not None:
                plugin.close()
        except Exception as exc:
            code = 1
            sc.send_update("error", error=f"close failed: {exc}", traceback=traceback.format_exc())
        if sc.state["abort"] or terminated or code:
            _count_in_flight_as_dropped(sc.metrics)
        sc.maybe_update(force=True)
        sc.send_update("done", code=code, eos=sc.eos_totals)
        deliver = not sc.state["abort"] and code == 0 and not terminated
        if deliver:
            try:
                sc.wait_released()
            except Terminated:
                deliver = False
        sc.close(deliver=deliver and not sc.state["abort"])
    return code
