"""A source stage's loop: read frames, number and send them, send EOS at the end or on ``stop``.

Offline sources (files) are read only when downstream accepts a frame: nothing is dropped.
Live sources are read by a capture thread into a one-slot buffer: when downstream is busy the
older frame is replaced (drop-oldest) and counted, so latency never builds up; while the stream
is down, outage notices go out instead of frames.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidaffect.api import Source
from vidaffect.errors import VidaffectError
from vidaffect.frames import Frame
from vidaffect.runtime.codec import encode_eos, encode_outage
from vidaffect.runtime.metrics import StageMetrics

if TYPE_CHECKING:
    from vidaffect.runtime.stage import StageContext

STALE_AFTER_S = 1.0
"""A live source opened this long before ``go`` (the other stages were loading models) is
opened again: frames a camera or RTSP server sent meanwhile wait in FFmpeg's and the kernel's
buffers, and would go out as if captured when read (12 s old frames with a latency of 0.3 s
were measured on an RTSP stream)."""

Queued = tuple[Any, float | None, int, dict[str, Any]]  # image, pts_ms, capture ns, meta


def wait_for_go(sc: StageContext) -> bool:
    """Wait for the run's ``go``; False when it was stopped or aborted first."""
    while not (sc.state["go"] or sc.state["stop"] or sc.state["abort"]):
        time.sleep(0.02)
        sc.should_abort()
    return not sc.state["abort"] and not sc.state["stop"]


class SeqFile:
    """The next sequence number of a source's stream, kept in the run folder (8 bytes,
    rewritten before each frame is sent), so that a source restarted on the same host goes on
    where the crashed one stopped and its frames keep unique, increasing numbers (a frame sent
    after the crash-time write is at most one number skipped). Restarted on another host (Ray),
    it finds no file and starts from the supervisor's estimate instead
    (:attr:`~vidaffect.runtime.graph.Launch.seq_from`)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def read(self) -> int:
        data = os.pread(self.fd, 8, 0)
        return int.from_bytes(data, "little") if len(data) == 8 else 0

    def reserve(self, next_seq: int) -> None:
        os.pwrite(self.fd, next_seq.to_bytes(8, "little"), 0)

    def close(self) -> None:
        os.close(self.fd)


def source_meta(source: Source, m: StageMetrics) -> dict[str, Any]:
    """The source's notes for the frame just read; a reconnect gap is also counted."""
    extra = source.take_meta()
    gap = extra.get("gap")
    if isinstance(gap, dict):
        m.reconnects += 1
        m.gap_s += float(gap.get("gap_s", 0.0))
        m.outage_s = 0.0  # over: now counted in gap_s
    return extra


class SourceLoop:
    """One source worker's loop (see the module docstring).

    Args:
        opened_at: when the source was opened (``time.monotonic()``): a live one opened more
            than :data:`STALE_AFTER_S` before ``go`` is reopened first.
    """

    def __init__(self, sc: StageContext, source: Source, opened_at: float | None = None) -> None:
        self.sc, self.source, self.opened_at = sc, source, opened_at
        self.m = sc.metrics
        self.info = sc.source_info
        self.stream = str(sc.spec.stream_id)
        self.key = sc.spec.stream_key(self.stream) if sc.spec.sticky else None
        run_dir = sc.launch.run_dir if sc.launch is not None else None
        self.seqs = SeqFile(Path(run_dir) / f"{sc.spec.stage}.seq") if run_dir else None
        self.seq = 0
        if sc.spec.restarts:  # on from the crashed start: its file here, else the supervisor's estimate
            kept = self.seqs.read() if self.seqs is not None else 0
            self.seq = kept or (sc.launch.seq_from if sc.launch is not None else 0)
        self.m.next_seq = self.seq
        self.last_ts = 0  # capture time of the last frame sent
        self.outage_sent = 0.0  # when the last outage notice went out (monotonic; 0: none)
        self.base_meta = {
            "fps": self.info["fps"],
            "source": self.info["description"],
            "source_incarnation": sc.incarnation,
        }

    def run(self) -> None:
        """Until the end of the stream, ``stop`` or ``abort``; EOS unless aborted.

        Raises:
            VidaffectError: a frame larger than ``pipeline.max_message_mb``.
            Exception: what the source raised (a live source's, from its capture thread).
        """
        sc = self.sc
        if not wait_for_go(sc):
            sc.broadcast(encode_eos(self.stream, self.seq))
            return
        if (
            self.info["live"]
            and self.opened_at is not None
            and time.monotonic() - self.opened_at > STALE_AFTER_S
        ):
            self.source.close()  # what was buffered while the models loaded is stale
            self.source.open()
        self.m.start_clock()
        if self.info["live"]:
            self._live()
        else:
            self._offline()
        if not sc.state["abort"]:
            sc.broadcast(encode_eos(self.stream, self.seq, {"dropped": self.m.dropped}))
            sc.eos_totals[self.stream] = self.seq

    def emit(self, image: Any, pts: float | None, ts_ns: int, extra: dict[str, Any]) -> bool:
        """Number and send one frame; False when aborted while sending.

        Raises:
            VidaffectError: the frame is larger than the next stage accepts.
        """
        max_bytes = self.sc.spec.max_message_bytes
        self.last_ts = ts_ns
        if 0 < max_bytes < image.nbytes:  # the next stage would refuse it unread
            h, w = image.shape[:2]
            raise VidaffectError(
                f"a {w}x{h} frame is {image.nbytes / 2**20:.1f} MB, above pipeline › "
                f"max_message_mb ({max_bytes / 2**20:g} MB): raise it, or downscale the source"
            )
        frame = Frame(image, self.stream, self.seq, ts_ns, pts, {**self.base_meta, **extra})
        if self.seqs is not None:
            self.seqs.reserve(self.seq + 1)
        if not self.sc.send_frame(frame):
            return False
        self.seq += 1
        self.m.frames_out += 1
        self.m.next_seq = self.seq
        return True

    def _read(self) -> tuple[Any, float | None] | None:
        t0 = time.perf_counter()
        item = self.source.read()
        self.m.busy_s += time.perf_counter() - t0
        if item is None:
            self.m.unreadable = self.source.undelivered()
        return item

    def _offline(self) -> None:
        sc = self.sc
        while not sc.should_abort() and not sc.state["stop"]:
            item = self._read()
            if item is None:
                return
            self.m.frames_in += 1
            if not self.emit(item[0], item[1], time.time_ns(), source_meta(self.source, self.m)):
                return

    def _live(self) -> None:
        self.slot: collections.deque[Queued] = collections.deque(maxlen=1)
        self.lock = threading.Condition()
        self.ended = threading.Event()
        self.failure: list[BaseException] = []
        reader = threading.Thread(target=self._capture, name="capture", daemon=True)
        reader.start()
        try:
            self._send_queued()
        finally:
            self.ended.set()
            reader.join(timeout=2.0)
            with self.lock:  # the newest frame, read but not sent when the stream was stopped
                self.m.dropped += len(self.slot)
                self.slot.clear()
        if self.failure:
            raise self.failure[0]

    def _send_queued(self) -> None:
        sc, slot, lock = self.sc, self.slot, self.lock
        while not sc.should_abort() and not sc.state["stop"]:
            with lock:
                queued = slot.popleft() if slot else None
                if queued is None:
                    if self.ended.is_set():
                        return
                    lock.wait(0.1)
                    if slot:
                        continue
                    out = self.source.outage()  # under the lock: every frame before a break was sent
            if queued is None:
                if not self._announce_outage(out):
                    return
                continue
            if not self.emit(*queued):
                return

    def _capture(self) -> None:
        """The capture thread: read into the one-frame slot, replacing (and counting) a frame
        that was not sent yet."""
        m, slot, lock = self.m, self.slot, self.lock
        try:
            while not self.ended.is_set():
                item = self._read()
                if item is None:
                    break
                extra = source_meta(self.source, m)
                with lock:
                    m.frames_in += 1
                    if slot:
                        m.dropped += 1
                        extra = {**slot[0][3], **extra}  # a dropped frame's notes (a gap) live on
                    slot.append((item[0], item[1], time.time_ns(), extra))
                    lock.notify()
        except BaseException as exc:  # raised again by the stage's main thread
            self.failure.append(exc)
        finally:
            self.ended.set()
            with lock:
                lock.notify()

    def _announce_outage(self, out: dict[str, Any] | None) -> bool:
        """While the stream is down (``out``: what ``source.outage()`` said while the slot was
        empty, so every frame before the break has been sent): an outage notice at once, then
        every ``source.outage_every_s``; False when aborted while sending."""
        m = self.m
        if out is None:
            m.outage_s, self.outage_sent = 0.0, 0.0
            return True
        m.outage_s = max(float(out.get("down_s", 0.0)), 1e-3)
        now = time.monotonic()
        if self.outage_sent and now - self.outage_sent < self.source.outage_every_s:
            return True
        self.outage_sent = now
        return self.sc.send_all(
            encode_outage(self.stream, self.seq, {**out, "last_ts_ns": self.last_ts}), self.key
        )
