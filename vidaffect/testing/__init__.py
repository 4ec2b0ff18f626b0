"""Test helpers shipped with the library: a fake camera and fault-injecting plugins; an RTSP
server on 127.0.0.1 (:mod:`vidaffect.testing.rtsp`, GStreamer).

Register them in a pipeline's processes by setting ``VIDAFFECT_PLUGINS=vidaffect.testing``
(environment variables reach the spawned stage processes).

* ``fake_camera`` source: a real video file played like a camera: paced at the clip's fps,
  looping, live (drop-oldest), frames timed by capture time (``pts_ms`` None). For tests and
  benchmarks where no physical camera exists.
* ``crash_after`` detector: passes frames through with no faces and raises after N frames.
* ``slow`` sink: sleeps per frame (a consumer that falls behind).
* ``record`` sink: appends ``stream seq faces`` per frame, and ``stream EOS`` at the end of
  each stream, to a text file.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

import vidaffect
from vidaffect.api import Detector, PluginConfig, Sink, Source, SourceInfo
from vidaffect.errors import SourceError
from vidaffect.frames import Detections, Frame


class FakeCamera(Source):
    """A video file played as a live camera: frames released at the clip's own rate, looping at
    the end, sent like a camera's (``pts_ms`` None, timed by capture time), drop-oldest
    buffering. Reads with OpenCV's FFmpeg backend; the engine's built-in ``video`` source is not
    used, so the library's test helpers do not depend on its plugins."""

    name = "fake_camera"
    summary = "test camera: a video file paced at its fps, looping, live"

    class Config(PluginConfig):
        uri: str = Field(description="path of the video file played")
        resize: int | None = Field(None, ge=8, description="longest side in pixels; None keeps the size")
        max_frames: int | None = Field(None, ge=1, description="end the stream after this many frames")

    config: Config

    @classmethod
    def is_live(cls, config: PluginConfig) -> bool:
        return True

    def open(self) -> SourceInfo:
        """Open the file.

        Raises:
            SourceError: it does not open or gives no frame.
        """
        self.cap = cv2.VideoCapture(self.config.uri, cv2.CAP_FFMPEG)
        ok, first = self.cap.read()
        if not ok:
            self.cap.release()
            raise SourceError(f"fake_camera source: cannot read a frame of {self.config.uri}")
        self._first: np.ndarray | None = first
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.period_s = 1.0 / (fps if 0 < fps < 1000 else 30.0)
        h, w = first.shape[:2]
        scale = self.config.resize / max(w, h) if self.config.resize else 1.0
        self.size = (max(1, round(w * scale)), max(1, round(h * scale)))
        self.emitted = 0
        self._due = time.monotonic()
        return SourceInfo(self.size[0], self.size[1], 1.0 / self.period_s, None, True, self.config.uri)

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next frame, uint8 ``(H, W, 3)`` BGR, released at the clip's rate; None after
        ``max_frames``."""
        if self.config.max_frames is not None and self.emitted >= self.config.max_frames:
            return None
        img, self._first = self._first, None
        if img is None:
            ok, img = self.cap.read()
            if not ok:  # the end: start over
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = self.cap.read()
                if not ok:
                    return None
        delay = self._due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._due = max(self._due, time.monotonic() - self.period_s) + self.period_s
        self.emitted += 1
        if img.shape[1::-1] != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        return img, None

    def close(self) -> None:
        if hasattr(self, "cap"):
            self.cap.release()


class CrashAfter(Detector):
    """A detector that finds nothing and raises ``RuntimeError`` after ``frames`` frames."""

    name = "crash_after"
    summary = "test detector: raises after N frames"

    class Config(PluginConfig):
        frames: int = Field(5, ge=0)

    config: Config

    def open(self) -> None:
        self.seen = 0

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        self.seen += len(images)
        if self.seen > self.config.frames:
            raise RuntimeError(f"injected failure after {self.config.frames} frames")
        return [Detections.empty() for _ in images]


class SlowSink(Sink):
    """A sink that sleeps ``delay_s`` per frame, and ``open_delay_s`` when it opens (a stage
    whose models take that long to load)."""

    name = "slow"
    summary = "test sink: sleeps per frame"

    class Config(PluginConfig):
        delay_s: float = Field(0.1, ge=0)
        open_delay_s: float = Field(0.0, ge=0)

    config: Config

    def open(self) -> None:
        time.sleep(self.config.open_delay_s)

    def write(self, frame: Frame) -> None:
        time.sleep(self.config.delay_s)


class RecordSink(Sink):
    """A sink that appends ``stream seq n_faces`` per frame and ``stream EOS`` at each stream's
    end to ``path`` (flushed per line). With ``smoothed``, each line goes on with
    ``track_id:label:score`` per face that has a smoothed label (score to 4 digits, as in the
    events); with ``delay_s`` it sleeps that long per frame (a sink that falls behind)."""

    name = "record"
    summary = "test sink: one line per frame: stream, seq, faces"

    class Config(PluginConfig):
        path: str
        smoothed: bool = Field(False, description="append track_id:label:score of each smoothed face")
        delay_s: float = Field(0.0, ge=0, description="sleep per frame")

    config: Config

    def open(self) -> None:
        Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.config.path, "a", buffering=1)

    def write(self, frame: Frame) -> None:
        time.sleep(self.config.delay_s)
        line = f"{frame.stream} {frame.seq} {len(frame.faces)}"
        if self.config.smoothed:
            for face in frame.faces:
                sm = face.get("smoothed")
                if sm is not None:
                    line += f" {face.get('track_id')}:{sm['label']}:{round(float(sm['score']), 4)}"
        self.f.write(line + "\n")

    def end_of_stream(self, stream: str, info: dict) -> None:
        self.f.write(f"{stream} EOS\n")

    def close(self) -> None:
        if hasattr(self, "f"):
            self.f.close()


@vidaffect.hookimpl
def register_sources(register: vidaffect.Register) -> None:
    register(FakeCamera)


@vidaffect.hookimpl
def register_detectors(register: vidaffect.Register) -> None:
    register(CrashAfter)


@vidaffect.hookimpl
def register_sinks(register: vidaffect.Register) -> None:
    register(SlowSink)
    register(RecordSink)
