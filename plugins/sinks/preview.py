"""The ``preview`` sink: what ``vidaffect dashboard`` shows, published on a ZeroMQ PUB socket.

Per stream, at most ``max_fps`` times a second: the annotated frame as one JPEG (drawn, scaled
to ``max_side`` and encoded once, however many dashboards watch) and the faces of that frame;
every ``change`` and ``gap`` event; the run's per-stage counters once a second; the stream's
end. Messages are multipart ``[stream id, kind, payload]`` (UTF-8 stream id; ``kind`` one of
``jpeg``, ``faces``, ``event``, ``stats``, ``end``; payload JPEG bytes or compact JSON;
``stats`` has an empty stream id). A dashboard that is slow or absent costs nothing: PUB drops
at the high-water mark.

``faces`` JSON: ``{"seq", "ts_ns", "size": [w, h], "labels", "faces": [{"track_id", "bbox",
"label", "score", "smoothed_label", "smoothed_score"}], "mood": {"label", "score", "faces"}}``
(bbox xyxy in the frame's pixels; ``mood`` as the ``mqtt`` sink publishes it,
:func:`vidaffect.events.mood.mood_of`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import cv2
import zmq
from pydantic import Field, model_validator

from vidaffect.api import PluginConfig, Sink
from vidaffect.errors import SinkError
from vidaffect.events.build import encode_event, frame_side_events
from vidaffect.events.mood import face_emotion, mood_of
from vidaffect.frames import Face, Frame
from vidaffect.imaging.draw import annotate
from vidaffect.runtime.addresses import endpoint_is_local
from vidaffect_plugins.sinks.pub_socket import bind_pub, check_bindable


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def face_summary(face: Face) -> dict[str, Any]:
    """The few fields of a face the dashboard shows."""
    emo, sm = face.get("emotion"), face.get("smoothed")
    return {
        "track_id": face.get("track_id"),
        "bbox": [round(float(v), 1) for v in face["bbox"]],
        "label": emo["label"] if emo else None,
        "score": round(float(emo["score"]), 3) if emo else None,
        "smoothed_label": sm["label"] if sm else None,
        "smoothed_score": round(float(sm["score"]), 3) if sm else None,
    }


def faces_message(frame: Frame, size: tuple[int, int]) -> dict[str, Any]:
    """The ``faces`` message of ``frame`` (module docstring); ``size``: the JPEG's (w, h)."""
    labels = frame.meta.get("labels")
    return {
        "seq": frame.seq,
        "ts_ns": frame.ts_ns,
        "size": list(size),
        "labels": labels,
        "faces": [face_summary(f) for f in frame.faces],
        "mood": mood_of(map(face_emotion, frame.faces), labels),
    }


class PreviewSink(Sink):
    """Publishes annotated JPEGs, faces, events and run counters for ``vidaffect dashboard``."""

    name = "preview"
    summary = "live preview for vidaffect dashboard: annotated JPEGs (rate-capped), faces, events, stats"
    wants_run_stats = True

    class Config(PluginConfig):
        endpoint: str = Field("tcp://127.0.0.1:5570", description="address to bind (the dashboard connects)")
        max_fps: float = Field(
            10.0, gt=0, le=60, description="JPEGs and faces per stream per second, at most"
        )
        max_side: int = Field(640, ge=64, le=4096, description="longer side of the JPEG in pixels")
        quality: int = Field(75, ge=10, le=100, description="JPEG quality")
        prob_bars: bool = Field(False, description="draw per-label probability bars")
        insecure: bool = Field(
            False, description="bind beyond loopback (anyone on the network can then watch the video)"
        )

        @model_validator(mode="after")
        def _local(self) -> PreviewSink.Config:
            if not self.insecure and not endpoint_is_local(self.endpoint):
                raise ValueError(
                    f"endpoint: {self.endpoint} lets other hosts watch the video unauthenticated; keep "
                    "127.0.0.1 and run the dashboard on this host (it has a token for remote viewers), "
                    "or set insecure: true"
                )
            return self

    config: Config

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """The endpoint can be bound (a check before any stage starts).

        Raises:
            SinkError: the address is in use or malformed.
        """
        check_bindable("preview", config.endpoint)  # type: ignore[attr-defined]

    def open(self) -> None:
        """Bind the PUB socket.

        Raises:
            SinkError: the endpoint cannot be bound.
        """
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, 20)  # a few frames per subscriber; older ones are dropped
        sock.setsockopt(zmq.LINGER, 200)
        self.endpoint = bind_pub("preview", sock, self.config.endpoint)
        self.sock = sock
        self._next: dict[str, float] = {}
        self.jpegs = 0

    def _send(self, stream: str, kind: str, payload: bytes) -> None:
        self.sock.send_multipart([stream.encode(), kind.encode(), payload], copy=False)

    def write(self, frame: Frame) -> None:
        """Events at once; the JPEG and faces when this stream's next preview is due."""
        for event in frame_side_events(frame):
            self._send(frame.stream, "event", encode_event(event))
        now = time.monotonic()
        if now < self._next.get(frame.stream, 0.0):
            return
        self._next[frame.stream] = now + 1.0 / self.config.max_fps
        labels = frame.meta.get("labels")
        img = annotate(frame.image, frame.faces, labels, self.config.prob_bars)
        h, w = img.shape[:2]
        scale = self.config.max_side / max(h, w)
        if scale < 1:
            img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.config.quality])
        if not ok:
            raise SinkError(f"preview sink: OpenCV could not encode a {w}x{h} frame as JPEG")
        self._send(frame.stream, "jpeg", jpeg.tobytes())
        self.jpegs += 1
        self._send(frame.stream, "faces", _compact(faces_message(frame, (w, h))))

    def run_stats(self, stages: dict[str, dict[str, Any]]) -> None:
        self._send("", "stats", _compact(stages))

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        self._send(stream, "end", _compact({"frames": info.get("frames")}))

    def counters(self) -> dict[str, int]:
        return {"jpegs": getattr(self, "jpegs", 0)}

    def close(self) -> None:
        sock = getattr(self, "sock", None)
        if sock is not None:
            sock.close()
