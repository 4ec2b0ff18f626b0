"""Video file writers for the ``video`` sink: H.264 through PyAV, or OpenCV's ``VideoWriter``.

H.264 (libx264 as bundled in PyAV's wheels; ``yuv420p``, CRF 23, preset ``veryfast``) is what
browsers play in a ``<video>`` tag and about a third of the size of OpenCV's MPEG-4 Part 2
(``mp4v``), which browsers do not play. On a 512x512 clip, two cores: 2.2 ms per frame
against 1.0 ms for ``mp4v`` (300 KB against 840 KB for 200 frames).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from vidaffect.errors import SinkError

if TYPE_CHECKING:
    import av

KEYFRAME_EVERY_S = 2.0  # H.264: a keyframe, so an MP4 fragment, every 2 s: what a kill can lose
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
H264_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}  # -> container


class FrameWriter(Protocol):
    """Writes uint8 BGR ``(H, W, 3)`` frames of one size to one file."""

    description: str

    def write(self, img: np.ndarray) -> None: ...

    def release(self) -> None: ...


def h264_available() -> bool:
    """Whether PyAV is installed with an H.264 encoder (libx264)."""
    try:
        import av

        av.codec.Codec("libx264", "w")
    except Exception:  # not installed, or a build without libx264
        return False
    return True


class H264Writer:
    """H.264 in an MP4/MOV/MKV container (by the suffix; MP4 for any other) through PyAV.
    Odd widths and heights (which ``yuv420p`` cannot hold) get one black column or row.

    MP4 and MOV files are fragmented (a fragment per keyframe, every
    :data:`KEYFRAME_EVERY_S` seconds of video, each written out at once), as NVRs record: a
    writer killed (SIGKILL, out of memory) leaves a file that plays up to its last whole
    fragment, where an ordinary MP4 has no index until it is closed and plays nothing.

    Raises:
        SinkError: the file cannot be created; a frame cannot be encoded or written
            (a full disk), naming the path and the OS error.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av

        self.path = path
        self.size = size
        self.even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        try:
            fmt = H264_SUFFIXES.get(path.suffix.lower(), "mp4")
            self.container = av.open(
                str(path), "w", format=fmt, options=FRAGMENTED_MP4 if fmt in ("mp4", "mov") else {}
            )
            self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        except (OSError, ValueError, av.FFmpegError) as exc:
            raise SinkError(f"video sink: cannot open {path} for writing: {exc}") from None
        self.stream.width, self.stream.height = self.even
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {
            "crf": "23",
            "preset": "veryfast",
            "g": str(max(1, round(fps * KEYFRAME_EVERY_S))),
        }
        self.description = f"H.264 {self.even[0]}x{self.even[1]} at {fps:g} fps"
        self._av = av

    def _mux(self, frame: av.VideoFrame | None) -> None:
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except (OSError, self._av.FFmpegError) as exc:
            raise SinkError(f"video sink: cannot write {self.path}: {exc}") from None

    def write(self, img: np.ndarray) -> None:
        if self.even != self.size:
            img = cv2.copyMakeBorder(
                img,
                0,
                self.even[1] - self.size[1],
                0,
                self.even[0] - self.size[0],
                cv2.BORDER_CONSTANT,
                value=(0, 0, 0),
            )
        self._mux(self._av.VideoFrame.from_ndarray(img, format="bgr24"))

    def release(self) -> None:
        """Flush the encoder and close the file (writes the MP4 index); once."""
        if self.container is None:
            return
        try:
            self._mux(None)  # flush the encoder
        finally:
            container, self.container = self.container, None  # type: ignore[assignment]  # closed: None
            container.close()


class OpenCvWriter:
    """OpenCV's ``VideoWriter`` with a FourCC (``mp4v`` for .mp4, ``MJPG`` for .avi).

    Raises:
        SinkError: the file cannot be opened with that codec.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], fourcc: str) -> None:
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            self.writer.release()
            raise SinkError(
                f"video sink: cannot open {path} for writing (codec {fourcc!r}, "
                f"{size[0]}x{size[1]} at {fps:g} fps); check that the folder is writable and "
                "that the codec suits the file type ('mp4v' for .mp4, 'MJPG' for .avi)"
            )
        self.description = f"{fourcc} {size[0]}x{size[1]} at {fps:g} fps"

    def write(self, img: np.ndarray) -> None:
        self.writer.write(img)

    def release(self) -> None:
        self.writer.release()


def open_writer(path: Path, fps: float, size: tuple[int, int], codec: str) -> FrameWriter:
    """A writer for ``path``: ``codec`` ``auto`` is H.264 for .mp4/.m4v/.mov/.mkv when PyAV
    has it, else OpenCV's ``mp4v`` (``MJPG`` for .avi); ``h264`` is H.264 or an error; any
    other 4-character code is an OpenCV FourCC.

    Raises:
        SinkError: ``h264`` without PyAV's H.264 encoder, or the file cannot be opened.
    """
    suffix = path.suffix.lower()
    if codec == "h264" or (codec == "auto" and suffix in H264_SUFFIXES and h264_available()):
        if not h264_available():
            raise SinkError("video sink: codec 'h264' needs PyAV with libx264 (pip install av)")
        return H264Writer(path, fps, size)
    fourcc = codec if codec not in ("auto", "h264") else ("MJPG" if suffix == ".avi" else "mp4v")
    return OpenCvWriter(path, fps, size, fourcc)
