"""What the dashboard knows of the pipelines it watches: one thread subscribed to each
``preview`` sink's endpoint (ZeroMQ SUB), keeping per stream the latest JPEG, the latest faces,
recent events and an emotion timeline, and per pipeline its stage counters."""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import zmq

log = logging.getLogger(__name__)

EVENTS_KEPT = 50


@dataclass
class StreamView:
    """One stream as the dashboard shows it.

    Attributes:
        pipeline: the endpoint of the preview sink it comes from.
        jpeg, jpeg_version: the newest annotated frame (JPEG bytes) and a counter that grows
            with each new one (MJPEG responses wait for it to change).
        jpeg_times: arrival times of recent JPEGs (``time.monotonic()``), for the preview fps.
        faces: the newest ``faces`` message (see :mod:`vidaffect_plugins.sinks.preview`).
        events: the newest ``change`` and ``gap`` events, oldest first.
        timeline: Unix second -> how many faces had each (smoothed) label in that second's frames.
        ended: the stream's end was seen.
    """

    pipeline: str
    jpeg: bytes = b""
    jpeg_version: int = 0
    jpeg_times: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=30))
    faces: dict[str, Any] = field(default_factory=dict)
    events: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=EVENTS_KEPT)
    )
    timeline: dict[int, Counter[str]] = field(default_factory=dict)
    ended: bool = False

    def fps(self) -> float:
        """Preview frames per second over the recent JPEGs (0 when fewer than two)."""
        t = self.jpeg_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0


class Feed:
    """Subscribes to ``endpoints`` and keeps :class:`StreamView` per stream; read the views under
    :attr:`lock`. Messages that do not parse are dropped and counted (:attr:`malformed`).

    Args:
        endpoints: the ``preview`` sinks' endpoints (``tcp://host:port``).
        timeline_s: seconds of emotion timeline kept per stream.
    """

    def __init__(self, endpoints: list[str], timeline_s: int = 300) -> None:
        self.endpoints, self.timeline_s = endpoints, timeline_s
        self.lock = threading.Lock()
        self.streams: dict[str, StreamView] = {}
        self.stats: dict[str, dict[str, Any]] = {}  # endpoint -> {"ts": ..., "stages": {...}}
        self.malformed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        poller = zmq.Poller()
        socks: dict[zmq.Socket[bytes], str] = {}
        for ep in self.endpoints:
            sock = ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, 20)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(ep)
            poller.register(sock, zmq.POLLIN)
            socks[sock] = ep
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(200):
                    while True:
                        try:
                            parts = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._handle(socks[sock], parts)
        finally:
            for sock in socks:
                sock.close(0)

    def _handle(self, endpoint: str, parts: list[bytes]) -> None:
        if len(parts) != 3:
            self.malformed += 1
            return
        try:
            stream, kind = parts[0].decode(), parts[1].decode()
            payload: Any = parts[2] if kind == "jpeg" else json.loads(parts[2])
        except ValueError:
            self.malformed += 1
            return
        with self.lock:
            if kind == "stats":
                self.stats[endpoint] = {"ts": time.time(), "stages": payload}
                return
            view = self.streams.get(stream)
            if view is None:
                view = self.streams[stream] = StreamView(endpoint)
            view.ended = kind == "end"
            if kind == "jpeg":
                view.jpeg, view.jpeg_version = payload, view.jpeg_version + 1
                view.jpeg_times.append(time.monotonic())
            elif kind == "faces":
                view.faces = payload
                self._count(view, payload)
            elif kind == "event":
                view.events.append(payload)

    def _count(self, view: StreamView, faces: dict[str, Any]) -> None:
        """Add the faces' labels to this second of the timeline; forget seconds beyond
        ``timeline_s``."""
        now = int(time.time())
        bucket = view.timeline.setdefault(now, Counter())
        for f in faces.get("faces", []):
            label = f.get("smoothed_label") or f.get("label")
            if label:
                bucket[label] += 1
        for t in [t for t in view.timeline if t < now - self.timeline_s]:
            del view.timeline[t]

    def timeline(self, stream: str) -> dict[str, Any]:
        """``{"t": [unix seconds], "labels": [...], "shares": {label: [share of faces]}}`` over
        the kept seconds (seconds without faces have no entry)."""
        with self.lock:
            view = self.streams.get(stream)
            data = dict(view.timeline) if view is not None else {}
            labels = list((view.faces.get("labels") if view is not None else None) or [])
        seconds = sorted(data)
        for counts in data.values():
            labels += [lab for lab in counts if lab not in labels]
        shares = {
            lab: [round(data[t][lab] / max(1, sum(data[t].values())), 3) for t in seconds] for lab in labels
        }
        return {"t": seconds, "labels": labels, "shares": shares}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
