"""The ``video`` sink: frames with boxes, labels and confidences drawn, written to a video file."""

from __future__ import annotations

from pathlib import Path

import cv2
from pydantic import Field

from vidaffect.api import PluginConfig, Sink
from vidaffect.draw import annotate
from vidaffect.errors import VidaffectError
from vidaffect.frames import Frame
from vidaffect_plugins.sinks.paths import prepare_output, stream_path


class VideoSink(Sink):
    """Writes annotated frames with OpenCV's ``VideoWriter`` (MPEG-4 Part 2 ``mp4v`` by default).

    The writer opens on the first frame of a stream (its size and the source's fps) and is
    released in ``close()``, which the runtime always calls (end of stream, Ctrl-C, SIGTERM,
    a crash elsewhere), so the file is always finalised and playable. Frames of another size
    than the first (a folder of photos) are letterboxed into the first frame's size.
    """

    name = "video"
    summary = "annotated video file (box, label, confidence, optional probability bars)"

    class Config(PluginConfig):
        path: str = Field(description="output file; other streams get name.<stream>.ext")
        fourcc: str = Field("mp4v", min_length=4, max_length=4, description="codec FourCC")
        fps: float | None = Field(None, gt=0, description="frame rate (default: the source's)")
        prob_bars: bool = Field(False, description="draw a probability bar per label")

    config: Config

    def open(self) -> None:
        self.path = prepare_output(self.config.path, "video")
        self.writers: dict[str, tuple[cv2.VideoWriter, tuple[int, int]]] = {}
        self.first_stream: str | None = None
        self.frames_written = 0

    def _writer(self, frame: Frame) -> tuple[cv2.VideoWriter, tuple[int, int]]:
        if frame.stream not in self.writers:
            if self.first_stream is None:
                self.first_stream = frame.stream
            path: Path = stream_path(self.path, frame.stream, self.first_stream)
            fps = self.config.fps or float(frame.meta.get("fps") or 25.0)
            size = frame.size
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*self.config.fourcc), fps, size)
            if not writer.isOpened():
                raise VidaffectError(f"video sink: cannot open {path} for writing ({self.config.fourcc})")
            self.writers[frame.stream] = (writer, size)
        return self.writers[frame.stream]

    def write(self, frame: Frame) -> None:
        writer, size = self._writer(frame)
        img = annotate(frame.image, frame.faces, frame.meta.get("labels"), self.config.prob_bars)
        if (img.shape[1], img.shape[0]) != size:
            img = letterbox(img, size)
        writer.write(img)
        self.frames_written += 1

    def end_of_stream(self, stream: str, info: dict) -> None:
        item = self.writers.pop(stream, None)
        if item is not None:
            item[0].release()

    def close(self) -> None:
        for writer, _ in getattr(self, "writers", {}).values():
            writer.release()
        self.writers = {}


def letterbox(img, size: tuple[int, int]):  # type: ignore[no-untyped-def]
    """``img`` scaled to fit ``size`` (width, height), centred on black; uint8 BGR."""
    import numpy as np

    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    nw, nh = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out
