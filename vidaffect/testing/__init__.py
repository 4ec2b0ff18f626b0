"""Test helpers shipped with the library: a fake camera and fault-injecting plugins.

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

import numpy as np
from pydantic import Field

import vidaffect
from vidaffect.api import Detector, PluginConfig, Sink
from vidaffect.frames import Detections, Frame
from vidaffect_plugins.capture import VideoFileSource


class FakeCamera(VideoFileSource):
    """A video file played as a live camera (paced, looping, drop-oldest, no ``pts_ms``)."""

    name = "fake_camera"
    summary = "test camera: a video file paced at its fps, looping, live"

    class Config(VideoFileSource.Config):
        mode: str = Field("live", description="always live")  # type: ignore[assignment]
        loop: bool = Field(True, description="start over at the end")

    config: Config

    @classmethod
    def is_live(cls, config: PluginConfig) -> bool:
        return True

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.live = True

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next frame, paced by the file's position, sent like a camera's (``pts_ms`` None)."""
        item = super().read()
        return None if item is None else (item[0], None)


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
    end to ``path`` (flushed per line)."""

    name = "record"
    summary = "test sink: one line per frame: stream, seq, faces"

    class Config(PluginConfig):
        path: str

    config: Config

    def open(self) -> None:
        Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.config.path, "a", buffering=1)

    def write(self, frame: Frame) -> None:
        self.f.write(f"{frame.stream} {frame.seq} {len(frame.faces)}\n")

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
