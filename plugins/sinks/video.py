"""The ``video`` sink: frames with boxes, labels and confidences drawn, written to a video file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from vidaffect.api import PluginConfig, Sink
from vidaffect.errors import SinkError
from vidaffect.frames import Frame, safe_stream_name
from vidaffect.imaging.draw import annotate
from vidaffect_plugins.sinks.encoders import FrameWriter, open_writer
from vidaffect_plugins.sinks.output_files import prepare_output, stream_path

DEFAULT_FPS = 25.0


class VideoSink(Sink):
    """Writes annotated frames to a video file: H.264 through PyAV by default, which browsers
    play (see :mod:`vidaffect_plugins.sinks.encoders`), else OpenCV's ``VideoWriter``.

    Output: uint8 BGR frames, drawn by :func:`vidaffect.imaging.draw.annotate`, written straight to
    ``path`` (no temporary file). The writer of a stream opens on that stream's first frame
    (its size; fps from the ``fps`` option, else ``frame.meta["fps"]``, else 25) and is
    released at the stream's end or in ``close()``, which the runtime always calls (Ctrl-C,
    SIGTERM, a crash elsewhere), so the file is finalised and playable even when cut short.
    Frames of another size than the stream's first (a folder of photos) are letterboxed
    into the first frame's size.

    Several streams: the pipeline's first stream (first seen, outside a pipeline) writes to
    ``path`` as is; every other stream to ``<stem>.<stream>.<suffix>`` beside it
    (``out.mp4`` -> ``out.cam2.mp4``; characters unfit for file names become ``_``). A sink
    restarted after a crash (``on_error: restart``) writes ``<stem>.part2<suffix>`` (then
    ``part3``, ...), leaving the file of the crashed one as it is (fragmented: it plays).

    Attributes:
        frames_written: frames written so far, all streams together.
        paths: output file per stream id.
    """

    name = "video"
    summary = "annotated video file (box, label, confidence, optional probability bars)"

    class Config(PluginConfig):
        path: str = Field(min_length=1, description="output file; other streams get name.<stream>.ext")
        codec: str = Field(
            "auto",
            min_length=4,
            max_length=4,
            description="auto: H.264 (browsers play it) when PyAV has it, else mp4v; "
            "h264; or an OpenCV FourCC such as 'mp4v' or 'MJPG' (.avi)",
        )
        fps: float | None = Field(
            None, gt=0, le=1000, description="frame rate of the file (default: the source's, else 25)"
        )
        prob_bars: bool = Field(False, description="draw a probability bar per label beside each face")

    config: Config
    frames_written: int = 0

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Before any stage starts: the output folder can be created and written to.

        Raises:
            SinkError: it cannot.
        """
        prepare_output(config.path, "video")  # type: ignore[attr-defined]

    def open(self) -> None:
        """Create the output folder and check it is writable.

        Raises:
            SinkError: the folder cannot be created or written to.
        """
        path = prepare_output(self.config.path, "video")
        # a restarted sink rolls to a part file: the file its crashed predecessor wrote plays as it is
        self.path = (
            path.with_name(f"{path.stem}.part{self.restarts + 1}{path.suffix}") if self.restarts else path
        )
        self.writers: dict[str, tuple[FrameWriter, tuple[int, int]]] = {}
        self.paths: dict[str, Path] = {}
        self.first_stream: str | None = None
        self.frames_written = 0

    def _fps(self, frame: Frame) -> float:
        if self.config.fps is not None:
            return self.config.fps
        fps = frame.meta.get("fps")
        try:
            fps = float(fps)  # type: ignore[arg-type]  # None or junk: the except below
        except (TypeError, ValueError):
            return DEFAULT_FPS
        return fps if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS

    def _writer(self, frame: Frame) -> tuple[FrameWriter, tuple[int, int]]:
        if frame.stream in self.writers:
            return self.writers[frame.stream]
        if self.first_stream is None:
            self.first_stream = self.streams[0] if self.streams else frame.stream
        path = stream_path(self.path, safe_stream_name(frame.stream), safe_stream_name(self.first_stream))
        writer = open_writer(path, self._fps(frame), frame.size, self.config.codec)
        self.writers[frame.stream] = (writer, frame.size)
        self.paths[frame.stream] = path
        return writer, frame.size

    def write(self, frame: Frame) -> None:
        """Annotate ``frame`` and append it to its stream's file.

        Raises:
            SinkError: the stream's file cannot be opened or written (the path and the
                OS error named).
        """
        writer, size = self._writer(frame)
        img = annotate(frame.image, frame.faces, frame.meta.get("labels"), self.config.prob_bars)
        if (img.shape[1], img.shape[0]) != size:
            img = letterbox(img, size)
        writer.write(img)
        self.frames_written += 1

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        """Finalise the stream's file now (the other streams keep writing)."""
        item = self.writers.pop(stream, None)
        if item is not None:
            item[0].release()

    def close(self) -> None:
        """Release every open writer, which finalises the files (MP4 index included).

        Raises:
            SinkError: a file could not be finalised (the others still are).
        """
        writers, self.writers = getattr(self, "writers", {}), {}
        errors = []
        for writer, _ in writers.values():
            try:
                writer.release()
            except SinkError as exc:
                errors.append(str(exc))
        if errors:
            raise SinkError("; ".join(errors))


def letterbox(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` (uint8 BGR) scaled to fit ``size`` ``(width, height)``, centred on black."""
    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    nw, nh = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out
