"""The ``webhook`` sink: POSTs events to a URL (alerting, chat bots, automation servers).

Each event is one POST whose body is the event's JSON (:mod:`vidaffect.events.build`); with
``snapshot``, a ``change`` event also carries ``snapshot_jpeg_b64``, a JPEG of the face
(base64), at most one per ``snapshot_every_s``. A track's ``change`` events are sent at most once
per ``cooldown_s`` (those in between are counted ``suppressed``; the end of a track, ``"to":
null``, always goes). Delivery is off the pipeline's thread (see
:mod:`vidaffect_plugins.sinks.webhook_delivery`): a slow or dead endpoint never slows the run;
its events wait in a bounded queue that drops the oldest, and are counted.

With ``secret_env`` naming an environment variable, each request is signed: header
``X-Vidaffect-Timestamp`` (Unix seconds) and ``X-Vidaffect-Signature: sha256=HEX``, the
HMAC-SHA256 of ``TIMESTAMP.BODY`` keyed with the variable's value (the scheme of Stripe's and
GitHub's webhooks).
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from vidaffect.api import PluginConfig, Sink
from vidaffect.errors import SinkError
from vidaffect.events.build import build_outage_event, frame_side_events, stream_end_change_events
from vidaffect.frames import Frame
from vidaffect_plugins.sinks.webhook_delivery import Delivery

EventType = Literal["change", "gap", "outage"]


def face_snapshot(image: np.ndarray, bbox: list[float], max_side: int, quality: int) -> bytes:
    """JPEG of the face in ``bbox`` (xyxy pixels) with a margin of 20% of its size on each side,
    cut from ``image`` (uint8 (H, W, 3) BGR) and scaled down so its longer side is at most
    ``max_side`` pixels.

    Raises:
        ValueError: the box lies outside the image, or OpenCV cannot encode the crop.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = bbox
    mx, my = 0.2 * (x2 - x1), 0.2 * (y2 - y1)
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(w, int(round(x2 + mx))), min(h, int(round(y2 + my)))
    if right <= left or bottom <= top:
        raise ValueError(f"face box {bbox} lies outside the {w}x{h} image")
    crop = image[top:bottom, left:right]
    scale = max_side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(
            crop,
            (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the face as JPEG")
    return buf.tobytes()


class WebhookSink(Sink):
    """POSTs ``change`` (and optionally ``gap``, ``outage``) events to ``url``.

    Attributes:
        suppressed: change events skipped by the per-track cooldown.
    """

    name = "webhook"
    summary = "HTTP POST of change events (cooldown, retries, bounded queue, HMAC signature, face snapshots)"
    needs_pixels = False

    class Config(PluginConfig):
        url: str = Field(description="endpoint to POST to (http:// or https://)")
        events: list[EventType] = Field(["change"], min_length=1, description="event types to send")
        cooldown_s: float = Field(10.0, ge=0, description="a track's change events at most once per this")
        timeout_s: float = Field(5.0, gt=0, le=120, description="per attempt")
        retries: int = Field(3, ge=0, le=10, description="attempts after the first (backoff 0.5 s doubling)")
        queue_size: int = Field(100, ge=1, le=100_000, description="events waiting at most (oldest dropped)")
        secret_env: str | None = Field(None, description="environment variable holding the HMAC secret")
        snapshot: bool = Field(False, description="attach a JPEG of the face to change events")
        snapshot_every_s: float = Field(5.0, ge=0, description="snapshot: at most one per this many seconds")
        snapshot_max_side: int = Field(256, ge=16, le=4096, description="snapshot: longer side in pixels")

        @field_validator("url")
        @classmethod
        def _http(cls, v: str) -> str:
            if not v.startswith(("http://", "https://")):
                raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
            return v

    config: Config

    @classmethod
    def wants_pixels(cls, config: PluginConfig) -> bool:
        return bool(getattr(config, "snapshot", False))

    def open(self) -> None:
        """Start the sender thread.

        Raises:
            SinkError: ``secret_env`` names a variable that is not set.
        """
        cfg = self.config
        secret = None
        if cfg.secret_env is not None:
            value = os.environ.get(cfg.secret_env)
            if not value:
                raise SinkError(
                    f"webhook sink: the environment variable {cfg.secret_env} (the HMAC secret) is not set"
                )
            secret = value.encode()
        self.delivery = Delivery(cfg.url, cfg.timeout_s, cfg.retries, cfg.queue_size, secret)
        self.suppressed = 0
        self._last_sent: dict[tuple[str, int], float] = {}
        self._next_snapshot = 0.0

    def _send(self, event: dict[str, Any]) -> None:
        self.delivery.submit(json.dumps(event, separators=(",", ":"), allow_nan=False).encode())

    def _cooled_down(self, stream: str, event: dict[str, Any]) -> bool:
        """A change event of a track sent less than ``cooldown_s`` ago is suppressed; the end of
        a track always goes (and forgets the track)."""
        key = (stream, int(event["track_id"]))
        now = time.monotonic()
        if event.get("to") is None:
            self._last_sent.pop(key, None)
            return True
        last = self._last_sent.get(key)
        if last is not None and now - last < self.config.cooldown_s:
            self.suppressed += 1
            return False
        self._last_sent[key] = now
        return True

    def _attach_snapshot(self, frame: Frame, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if now < self._next_snapshot or event.get("to") is None:
            return
        face = next((f for f in frame.faces if f.get("track_id") == event["track_id"]), None)
        if face is None:
            return
        try:
            jpeg = face_snapshot(frame.image, face["bbox"], self.config.snapshot_max_side, 85)
        except ValueError:
            return
        event["snapshot_jpeg_b64"] = base64.b64encode(jpeg).decode()
        self._next_snapshot = now + self.config.snapshot_every_s

    def write(self, frame: Frame) -> None:
        """Queue the frame's ``gap`` and ``change`` events that are switched on (never blocks)."""
        for event in frame_side_events(frame):
            if event["type"] not in self.config.events:
                continue
            if event["type"] == "change":
                if not self._cooled_down(frame.stream, event):
                    continue
                if self.config.snapshot:
                    self._attach_snapshot(frame, event)
            self._send(event)

    def outage(self, stream: str, info: dict[str, Any]) -> None:
        if "outage" in self.config.events:
            self._send(build_outage_event(stream, info))

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        """The ``change`` events that end the stream's open tracks."""
        if "change" in self.config.events:
            for event in stream_end_change_events(stream, info):
                self._cooled_down(stream, event)
                self._send(event)

    def counters(self) -> dict[str, int]:
        d = getattr(self, "delivery", None)
        if d is None:
            return {}
        c = d.counters
        return {"posted": c.posted, "failed": c.failed, "dropped": c.dropped, "suppressed": self.suppressed}

    def close(self) -> None:
        """Deliver what is queued (at most ``timeout_s`` more), then stop the sender."""
        d = getattr(self, "delivery", None)
        if d is not None:
            d.close(self.config.timeout_s)
