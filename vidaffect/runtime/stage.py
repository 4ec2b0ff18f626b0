"""Entry point of a stage process: build the plugin, run its loop, report to the supervisor.

A stage process gets a plain-dict spec (see :mod:`.graph`) and creates its own sockets:
an input PULL (bound), one :class:`~.transport.Fanout` per downstream stage, a SUB on the
supervisor's control channel and a PUSH to its updates channel (ready, counters, done, errors). Control messages:

* ``go``: start (a source waits for it, so no frame is sent before every stage is ready);
* ``stop``: a source stops reading and sends EOS, so the pipeline drains and files close;
* ``abort``: every stage stops now, closes its plugin and exits;
* ``stats|JSON``: the run's per-stage counters, once a second, when a sink asks for them
  (:attr:`vidaffect.api.Sink.wants_run_stats`).

SIGINT is ignored (the supervisor handles Ctrl-C for the whole pipeline); SIGTERM ends the
loop through the same path as ``abort``, so ``close()`` still runs and files are finalised.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import threading
import time
import traceback
import zlib
from pathlib import Path
from typing import Any

import msgpack
import zmq

from vidaffect.api import Plugin, Source
from vidaffect.errors import VidaffectError
from vidaffect.frames import Frame
from vidaffect.runtime.codec import MessageError, decode, encode_eos, encode_frame, encode_outage
from vidaffect.runtime.liveness import is_alive, process_identity, start_watchdog
from vidaffect.runtime.logs import configure, debug_enabled
from vidaffect.runtime.metrics import StageMetrics, in_hand
from vidaffect.runtime.reorder import Reorderer
from vidaffect.runtime.security import CONTROL_MAX_BYTES, PeerAuth, RunKeys
from vidaffect.runtime.transport import SOCKET_BUFFER_BYTES, Fanout, pull_socket, push_socket

REPORT_EVERY_S = 0.5
SUPERVISOR_CHECK_S = 0.25  # how often a stage checks that its supervisor is alive


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

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.ctx = zmq.Context()
        self.auth = PeerAuth(RunKeys.from_spec(spec["curve"]) if spec.get("curve") else None)
        self.updates = self.auth.client(self.ctx.socket(zmq.PUSH))
        self.updates.setsockopt(zmq.LINGER, 2000)
        self.updates.connect(spec["updates"])
        self.control = self.auth.client(self.ctx.socket(zmq.SUB), CONTROL_MAX_BYTES)
        self.control.setsockopt(zmq.SUBSCRIBE, b"")
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.connect(spec["control"])
        self.metrics = StageMetrics()
        self.plugin: Plugin | None = None  # set once built: its counters go with the metrics
        self.run_stats: dict[str, Any] | None = None  # the newest "stats" control message
        self.state = {"go": False, "stop": False, "abort": False}
        self.upstream_ended: dict[str, int] | None = None
        self.released = False
        self.supervisor = (
            tuple(spec["supervisor"]) if spec.get("supervisor") else process_identity(os.getppid())
        )
        self._supervisor_checked = 0.0
        self.eos_totals: dict[str, int] = {}
        self._last_update = 0.0
        buf = None if spec.get("live") else SOCKET_BUFFER_BYTES
        max_bytes = spec.get("max_message_bytes", -1)
        self.inp = (
            pull_socket(self.ctx, spec["input"], spec["hwm"], buf, self.auth, max_bytes)
            if spec.get("input")
            else None
        )
        drops = spec.get("outputs_drop") or [False] * len(spec["outputs"])
        hwms = spec.get("outputs_hwm") or [spec["hwm"]] * len(spec["outputs"])
        self.outputs = [
            Fanout(
                [push_socket(self.ctx, ep, hwm, buf, self.auth) for ep in group],
                self.should_abort,
                drop_when_full=drop,
            )
            for group, drop, hwm in zip(spec["outputs"], drops, hwms)
        ]
        self.outputs_pixels: list[bool] = spec.get("outputs_pixels") or [True] * len(self.outputs)
        self.sticky = bool(spec.get("sticky"))

    def send_update(self, kind: str, **fields: Any) -> None:
        msg = {
            "type": kind,
            "stage": self.spec["stage"],
            "worker": self.spec["worker"],
            "pid": os.getpid(),
            **fields,
        }
        self.updates.send(msgpack.packb(msg, use_bin_type=True))

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
            word = msg.decode(errors="replace")
            if word in self.state:
                self.state[word] = True
            elif word.startswith("stats|"):  # the run's counters, for a sink that shows them
                try:
                    self.run_stats = json.loads(word[6:])
                except ValueError:
                    self.metrics.malformed += 1
            elif word == f"release|{self.spec['stage']}":
                self.released = True
            elif word.startswith("upstream_ended|"):
                # "upstream_ended|<stage>|<stream>=<frames>,...": every producer of this
                # stage has exited; an EOS still missing was lost with a crashed worker.
                _, stage, totals = word.split("|", 2)
                if stage == self.spec["stage"]:
                    pairs = (item.split("=") for item in totals.split(",") if "=" in item)
                    self.upstream_ended = {k: int(v) for k, v in pairs}

    def _poll(self) -> bool:
        """Read control messages; True on abort (also when the supervisor died)."""
        self.poll_control()
        now = time.monotonic()
        if now - self._supervisor_checked >= SUPERVISOR_CHECK_S:
            self._supervisor_checked = now
            if not is_alive(self.supervisor):  # the supervisor died (SIGKILL): don't linger
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
        none (encoded once for all of them)."""
        key = zlib.crc32(frame.stream.encode()) if self.sticky else None
        full = encode_frame(frame)
        bare = full if all(self.outputs_pixels) else encode_frame(frame, pixels=False)
        return all(out.send(full if px else bare, key) for out, px in zip(self.outputs, self.outputs_pixels))

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


def _wait_for_go(sc: StageContext) -> bool:
    while not (sc.state["go"] or sc.state["stop"] or sc.state["abort"]):
        time.sleep(0.02)
        sc.should_abort()
    return not sc.state["abort"] and not sc.state["stop"]


class SeqFile:
    """The next sequence number of a source's stream, kept in the run folder (8 bytes,
    rewritten before each frame is sent), so that a restarted source goes on where the crashed
    one stopped: the next stage then takes its frames at once, instead of dropping every frame
    numbered below the old one as late. A frame sent after the crash-time write is at most one
    number skipped, which the next stage counts as lost."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def read(self) -> int:
        data = os.pread(self.fd, 8, 0)
        return int.from_bytes(data, "little") if len(data) == 8 else 0

    def reserve(self, next_seq: int) -> None:
        os.pwrite(self.fd, next_seq.to_bytes(8, "little"), 0)

    def close(self) -> None:
        os.close(self.fd)


STALE_AFTER_S = 1.0
"""A live source opened this long before ``go`` (the other stages were loading models) is
opened again: frames a camera or RTSP server sent meanwhile wait in FFmpeg's and the kernel's
buffers, and would go out as if captured when read (12 s old frames with a latency of 0.3 s
were measured on an RTSP stream)."""


def run_source(sc: StageContext, source: Source, opened_at: float | None = None) -> None:  # noqa: C901
    """Read frames and push them downstream; EOS at the end of the stream or on ``stop``.

    Offline sources (files) are read only when downstream accepts a frame: nothing is dropped.
    Live sources are read by a capture thread into a one-slot buffer: when downstream is busy
    the older frame is replaced (drop-oldest) and counted, so latency never builds up; one
    opened (at ``opened_at``, monotonic) more than :data:`STALE_AFTER_S` before ``go`` is
    reopened first.
    """
    stream = sc.spec["stream_id"]
    info = sc.spec["source_info"]
    key = zlib.crc32(stream.encode()) if sc.spec.get("sticky") else None
    m = sc.metrics
    seqs = SeqFile(Path(sc.spec["run_dir"]) / f"{sc.spec['stage']}.seq") if sc.spec.get("run_dir") else None
    seq = seqs.read() if seqs is not None and sc.spec.get("restarted") else 0
    if not _wait_for_go(sc):
        sc.broadcast(encode_eos(stream, seq))
        return
    if info["live"] and opened_at is not None and time.monotonic() - opened_at > STALE_AFTER_S:
        source.close()  # what was buffered while the models loaded is stale
        source.open()
    sc.metrics.start_clock()
    base_meta = {"fps": info["fps"], "source": info["description"]}

    max_bytes = sc.spec.get("max_message_bytes", -1)

    last_ts = 0  # capture time of the last frame sent
    outage_sent = 0.0  # when the last outage notice went out (monotonic; 0: none for this outage)

    def emit(image: Any, pts: float | None, ts_ns: int, extra: dict[str, Any]) -> bool:
        nonlocal seq, last_ts
        last_ts = ts_ns
        if 0 < max_bytes < image.nbytes:  # the next stage would refuse it unread
            h, w = image.shape[:2]
            raise VidaffectError(
                f"a {w}x{h} frame is {image.nbytes / 2**20:.1f} MB, above pipeline › "
                f"max_message_mb ({max_bytes / 2**20:g} MB): raise it, or downscale the source"
            )
        frame = Frame(image, stream, seq, ts_ns, pts, {**base_meta, **extra})
        if seqs is not None:
            seqs.reserve(seq + 1)
        if not sc.send_frame(frame):
            return False
        seq += 1
        m.frames_out += 1
        return True

    if not info["live"]:
        while not sc.should_abort() and not sc.state["stop"]:
            t0 = time.perf_counter()
            item = source.read()
            m.busy_s += time.perf_counter() - t0
            if item is None:
                m.unreadable = source.undelivered()
                break
            m.frames_in += 1
            if not emit(item[0], item[1], time.time_ns(), _source_meta(source, m)):
                break
    else:
        slot: collections.deque[tuple[Any, float | None, int, dict[str, Any]]] = collections.deque(maxlen=1)
        lock = threading.Condition()
        ended = threading.Event()

        failure: list[BaseException] = []

        def capture() -> None:
            try:
                while not ended.is_set():
                    t0 = time.perf_counter()
                    item = source.read()
                    m.busy_s += time.perf_counter() - t0
                    if item is None:
                        m.unreadable = source.undelivered()
                        break
                    extra = _source_meta(source, m)
                    with lock:
                        m.frames_in += 1
                        if slot:
                            m.dropped += 1
                            extra = {**slot[0][3], **extra}  # a dropped frame's notes (a gap) live on
                        slot.append((item[0], item[1], time.time_ns(), extra))
                        lock.notify()
            except BaseException as exc:  # raised again by the stage's main thread
                failure.append(exc)
            finally:
                ended.set()
                with lock:
                    lock.notify()

        def announce_outage(out: dict[str, Any] | None) -> bool:
            """While the stream is down (``out``: what ``source.outage()`` said while the slot
            was empty, so every frame before the break has been sent): an outage notice at
            once, then every ``source.outage_every_s``; False when aborted while sending."""
            nonlocal outage_sent
            if out is None:
                m.outage_s, outage_sent = 0.0, 0.0
                return True
            m.outage_s = max(float(out.get("down_s", 0.0)), 1e-3)
            now = time.monotonic()
            if outage_sent and now - outage_sent < source.outage_every_s:
                return True
            outage_sent = now
            return sc.send_all(encode_outage(stream, seq, {**out, "last_ts_ns": last_ts}), key)

        reader = threading.Thread(target=capture, name="capture", daemon=True)
        reader.start()
        while not sc.should_abort() and not sc.state["stop"]:
            with lock:
                queued = slot.popleft() if slot else None
                if queued is None:
                    if ended.is_set():
                        break
                    lock.wait(0.1)
                    if slot:
                        continue
                    out = source.outage()  # under the lock: every frame before a break was sent
            if queued is None:
                if not announce_outage(out):
                    break
                continue
            if not emit(*queued):
                break
        ended.set()
        reader.join(timeout=2.0)
        with lock:  # the newest frame, read but not sent when the stream was stopped
            m.dropped += len(slot)
            slot.clear()
        if failure:
            raise failure[0]
    if not sc.state["abort"]:
        sc.broadcast(encode_eos(stream, seq, {"dropped": m.dropped}))
        sc.eos_totals[stream] = seq


def _source_meta(source: Source, m: StageMetrics) -> dict[str, Any]:
    """The source's notes for the frame just read; a reconnect gap is also counted."""
    extra = source.take_meta()
    gap = extra.get("gap")
    if isinstance(gap, dict):
        m.reconnects += 1
        m.gap_s += float(gap.get("gap_s", 0.0))
        m.outage_s = 0.0  # over: now counted in gap_s
    return extra


def run_processor(sc: StageContext, apply: _Applier) -> None:
    """Receive frames, apply the detector/classifier/sink plugin, pass them on in order.

    Frames already queued on the input (up to the stage's ``batch``) are taken together, so
    a classifier sees the faces of several frames in one forward pass; nothing waits for a
    batch to fill.
    """
    spec = sc.spec
    assert sc.inp is not None
    reorder = Reorderer(
        spec["producers"],
        spec["reorder_window"],
        ordered=spec["ordered"],
        resync=spec.get("restarted", False),
    )
    poller = zmq.Poller()
    poller.register(sc.inp, zmq.POLLIN)
    poller.register(sc.control, zmq.POLLIN)
    m = sc.metrics
    m.start_clock()
    streams = spec["streams"]
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
        for _ in range(spec.get("batch", 1)):
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


class _Applier:
    """Applies a stage's plugin to in-order items and passes them on.

    Runs of frames between EOS markers are handed to the plugin together. The detector stage
    also tracks faces (when the pipeline has a ``tracking`` section); the last stage before
    the sinks then smooths each track's emotion and notes label changes, once per frame, so
    that every sink gets the same labels.
    """

    def __init__(self, sc: StageContext, plugin: Plugin) -> None:
        self.sc, self.plugin, self.kind = sc, plugin, sc.spec["kind"]
        tracking, smoothing = sc.spec.get("tracking"), sc.spec.get("smoothing")
        self.tracking = self.smoother = None
        if tracking:
            from vidaffect.analytics.tracking import Tracking

            self.tracking = Tracking(tracking)
        if smoothing:
            from vidaffect.analytics.smoothing import Smoother

            self.smoother = Smoother(
                smoothing["smoothing"], smoothing["alpha"], smoothing["window"], smoothing["hysteresis"]
            )

    def __call__(self, items: list[tuple[dict[str, Any], Frame | None]]) -> bool:
        """Process ``items`` (frames and EOS markers, in order); False when aborted."""
        run: list[Frame] = []
        for hdr, item in items:
            if item is not None:
                run.append(item)
                continue
            if run and not self._frames(run):
                return False
            run = []
            if not self._eos(hdr):
                return False
        return self._frames(run) if run else True

    def _frames(self, frames: list[Frame]) -> bool:
        m = self.sc.metrics
        t0 = time.perf_counter()
        if self.kind == "detector":
            self._detect(frames)
        elif self.kind == "classifier":
            self.plugin.classify(frames)  # type: ignore[attr-defined]
        else:
            if self.sc.run_stats is not None:
                stats, self.sc.run_stats = self.sc.run_stats, None
                self.plugin.run_stats(stats)  # type: ignore[attr-defined]
            for frame in frames:
                self.plugin.write(frame)  # type: ignore[attr-defined]
        if self.smoother is not None:
            for frame in frames:
                self.smoother.apply(frame)
        m.busy_s += time.perf_counter() - t0
        for frame in frames:
            m.faces += len(frame.meta.get("faces", ()))
            m.observe_latency(frame.ts_ns)
            if self.sc.outputs and not self.sc.send_frame(frame):
                return False
            m.frames_out += 1
        return True

    def _detect(self, frames: list[Frame]) -> None:
        m = self.sc.metrics
        if self.tracking is None:
            for frame, dets in zip(frames, self.plugin.detect([f.image for f in frames])):  # type: ignore[attr-defined]
                frame.meta["faces"] = dets.to_faces()
            m.detected += len(frames)
            return
        for frame in frames:
            tracker = self.tracking.tracker(frame)
            dets = None
            if tracker.needs_detection(frame):
                dets = self.plugin.detect([frame.image])[0]  # type: ignore[attr-defined]
                m.detected += 1
            frame.meta["tracks_ended"] = tracker.update(frame, dets)

    def outage(self, hdr: dict[str, Any]) -> bool:
        """An outage notice: a sink's plugin gets it, other stages pass it on; False when
        aborted while sending."""
        info = {**hdr["meta"], "frames": hdr["seq"]}
        if self.kind == "sink":
            self.plugin.outage(hdr["stream"], info)  # type: ignore[attr-defined]
            return True
        return self.sc.send_all(encode_outage(hdr["stream"], hdr["seq"], hdr["meta"]))

    def _eos(self, hdr: dict[str, Any]) -> bool:
        stream, meta = hdr["stream"], dict(hdr["meta"])
        if self.smoother is not None:  # the tracks still labelled end with the stream
            meta["changes"] = meta.get("changes", []) + self.smoother.end_stream(stream)
        if self.kind == "sink":
            self.plugin.end_of_stream(stream, {**meta, "frames": hdr["seq"]})  # type: ignore[attr-defined]
        self.sc.eos_totals[stream] = hdr["seq"]
        return self.sc.broadcast(encode_eos(stream, hdr["seq"], meta))


def _count_in_flight_as_dropped(m: StageMetrics) -> None:
    """After an abort, SIGTERM or a failure: the frames this stage had received and not yet
    passed on (in a batch, in the reorder window, in a source's hand) are dropped here, and
    counted, so that ``frames_in == frames_out + dropped`` holds for every stage. On a clean
    end nothing is in flight, and nothing is added."""
    m.dropped += in_hand(m.frames_in, m.frames_out, m.dropped)


def stage_main(spec: dict[str, Any]) -> None:
    """Process entry point (``multiprocessing`` target)."""
    if "environ" in spec:  # the supervisor's environment now, not the fork server's at its start
        os.environ.clear()
        os.environ.update(spec["environ"])
    configure()  # as the command that started the run (--debug or not)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    in_loop = threading.Event()
    if spec.get("supervisor"):  # exit even while imports and models load (no orphans)
        start_watchdog(tuple(spec["supervisor"]), in_loop)
    _set_threads(spec["threads"], spec["kind"])
    from vidaffect.plugin_manager import get_registry

    sc = StageContext(spec)
    plugin: Plugin | None = None
    code = 0
    terminated = False
    try:
        cls: type[Plugin] = get_registry().get(spec["kind"], spec["plugin"])
        plugin = sc.plugin = cls(cls.Config(**spec["plugin_options"]))
        plugin.streams = list(spec["streams"])
        plugin.restarts = int(spec.get("restarts", 0))
        if isinstance(plugin, Source):
            info = plugin.open()
            opened_at = time.monotonic()
            spec["source_info"] = dict(info.__dict__)
            sc.send_update("ready", source_info=spec["source_info"])
            in_loop.set()
            run_source(sc, plugin, opened_at)
        else:
            plugin.open()  # type: ignore[attr-defined]
            applier = _Applier(sc, plugin)  # tracking / smoothing set up before "ready"
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
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
