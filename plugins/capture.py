"""OpenCV sources: video files, webcams, RTSP/HTTP streams and folders of images.

Every source emits uint8 ``(H, W, 3)`` BGR frames. Options shared by all:

* ``uri``: what to open (path, device index, URL, folder);
* ``fps``: target frame rate; frames beyond it are skipped (files) or asked of the camera
  (webcams); network streams come at the camera's own rate;
* ``resize``: ``[width, height]`` output size, or a single number for the longest side;
* ``mode``: ``auto`` (files and folders offline, cameras and streams live), ``offline``
  (wait for downstream, never drop: every frame is processed), ``live`` (drop the oldest
  frame when downstream is busy; a file in live mode is paced at its own fps, like a camera).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

import vidaffect
from vidaffect.api import PluginConfig, Source, SourceInfo
from vidaffect.errors import SourceError
from vidaffect.imaging.imagefile import DEFAULT_MAX_PIXELS, ImageTooLarge, decode_bounded

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class CaptureConfig(PluginConfig):
    uri: str = Field(description="path, device index, URL or folder to read")
    fps: float | None = Field(None, gt=0, description="target frames per second (None: native)")
    resize: list[int] | int | None = Field(
        None, description="[width, height] in pixels, or the longest side; None keeps the size"
    )
    mode: Literal["auto", "offline", "live"] = Field(
        "auto", description="offline: never drop; live: drop oldest when busy (files paced)"
    )
    max_frames: int | None = Field(None, ge=1, description="end the stream after this many frames")

    @field_validator("uri", mode="before")
    @classmethod
    def _number_is_a_device_index(cls, v: object) -> object:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # `uri: 0` in YAML

    @field_validator("resize")
    @classmethod
    def _check_resize(cls, v: list[int] | int | None) -> list[int] | int | None:
        if isinstance(v, list) and (len(v) != 2 or min(v) < 8):
            raise ValueError("resize must be [width, height] with both >= 8, or one number")
        if isinstance(v, int) and v < 8:
            raise ValueError("resize must be >= 8 pixels")
        return v


def _existing(uri: str, what: str, kind: Callable[[Path], bool]) -> str:
    """``uri`` if it names an existing ``kind`` (``Path.is_file``/``Path.is_dir``); else a
    ValueError naming ``what`` and, for a relative path, the folder it was resolved against."""
    path = Path(uri).expanduser()
    if kind(path):
        return uri
    where = uri if path.is_absolute() else f"{uri} (relative to the current folder {Path.cwd()})"
    raise ValueError(f"{what} not found: {where}")


def _check_opens(source: Source) -> None:
    """Open ``source`` and close it again (a preflight check); its errors propagate."""
    try:
        source.open()
    finally:
        source.close()


DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}


def tcp_reachable(uri: str, timeout_s: float) -> tuple[str, bool] | None:
    """``("host:port", whether a TCP connection to it succeeds)`` for a network ``uri`` (e.g.
    ``rtsp://cam.local/stream``, port 554 when none is given); ``None`` for anything else."""
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is not a number, or out of range
        return None
    where = f"{parts.hostname}:{port}"
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return where, True
    except OSError:
        return where, False


def output_size(w: int, h: int, resize: list[int] | int | None) -> tuple[int, int]:
    """``(width, height)`` after a source's ``resize``: None keeps the size, an int is the
    longer side (aspect ratio kept; it may enlarge), ``[width, height]`` is exact."""
    if resize is None:
        return w, h
    if isinstance(resize, int):
        s = resize / max(w, h)
        return max(1, round(w * s)), max(1, round(h * s))
    return int(resize[0]), int(resize[1])


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` at ``size`` ``(width, height)``: area interpolation to shrink, bilinear to enlarge."""
    if (img.shape[1], img.shape[0]) == size:
        return img
    inter = cv2.INTER_AREA if size[0] < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=inter)


class _CaptureSource(Source):
    """Shared logic of the cv2.VideoCapture sources."""

    Config = CaptureConfig
    config: CaptureConfig
    default_live = False

    @classmethod
    def is_live(cls, config: PluginConfig) -> bool:
        mode = getattr(config, "mode", "auto")
        return cls.default_live if mode == "auto" else mode == "live"

    def __init__(self, config: CaptureConfig) -> None:
        super().__init__(config)
        self.cap: cv2.VideoCapture | None = None
        self.live = self.is_live(config)
        self.size = (0, 0)
        self.native_fps = 0.0
        self.step = 1.0
        self._next_index = 0.0
        self._index = 0
        self._emitted = 0
        self._expected: int | None = None  # frames a file's container announces
        self._t0: float | None = None

    def _open_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Open the file or camera and read a frame, in the launching process before any stage
        starts, so a file with no readable frame or a camera that does not open is reported
        before the models load.

        Raises:
            SourceError: it cannot be opened or gives no frame.
        """
        _check_opens(cls(config))  # type: ignore[arg-type]

    def describe(self) -> str:
        return self.config.uri

    def open(self) -> SourceInfo:
        cap = self._open_capture()
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.name} source: cannot open {self.describe()}")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"{self.name} source: {self.describe()} opened but gave no frame")
        self.cap = cap
        self._first: np.ndarray | None = first
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.native_fps = fps if fps and math.isfinite(fps) and 0 < fps < 1000 else 30.0
        target = self.config.fps or self.native_fps
        self.step = max(1.0, self.native_fps / target) if not self.default_live else 1.0
        self.size = output_size(first.shape[1], first.shape[0], self.config.resize)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        # frame k is emitted at index ceil(k * step): those with k * step <= count - 1
        frame_count = (
            math.floor((count - 1) / self.step + 1e-9) + 1 if count > 0 and not self.default_live else None
        )
        if self.config.max_frames is not None and frame_count is not None:
            frame_count = min(frame_count, self.config.max_frames)
        self._expected = frame_count
        return SourceInfo(
            self.size[0], self.size[1], min(target, self.native_fps), frame_count, self.live, self.describe()
        )

    def _grab(self) -> np.ndarray | None:
        assert self.cap is not None
        if self._first is not None:
            img, self._first = self._first, None
            return img
        ok, img = self.cap.read()
        return img if ok else None

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """Next frame as ``(image, pts_ms)``; image uint8 (H, W, 3) BGR, resized as configured.

        ``pts_ms`` is the frame's position in a file (frame index over the file's frame rate);
        cameras and streams give None, as their frames are timed by capture time. None at the end.
        """
        if self.config.max_frames is not None and self._emitted >= self.config.max_frames:
            return None
        while True:
            img = self._grab()
            if img is None:
                return None
            index = self._index
            self._index += 1
            if index + 1e-9 < self._next_index:
                continue  # subsampling to the target fps
            self._next_index += self.step
            self._emitted += 1
            if self.default_live:  # cameras and streams: the frame's time is its capture time
                return resize_image(img, self.size), None
            pts = index * 1000.0 / self.native_fps
            if self.live:
                self._pace(pts)
            return resize_image(img, self.size), pts

    def undelivered(self) -> int:
        """Frames the file's container announced that could not be decoded (0 for cameras,
        streams and looped files, which announce none)."""
        return max(0, self._expected - self._emitted) if self._expected is not None else 0

    def _pace(self, pts_ms: float) -> None:
        """A file in live mode: release frames at the clip's own rate, like a camera."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now - pts_ms / 1000.0
        delay = self._t0 + pts_ms / 1000.0 - now
        if delay > 0:
            time.sleep(delay)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class VideoFileSource(_CaptureSource):
    """A video file (any container and codec OpenCV's FFmpeg backend reads), optionally looped."""

    name = "video"
    summary = "video file (mp4, mov, avi, ...); offline by default, every frame processed"

    class Config(CaptureConfig):
        loop: bool = Field(False, description="start over at the end (never ends)")

        @field_validator("uri")
        @classmethod
        def _file_exists(cls, v: str) -> str:
            return _existing(v, "video file", Path.is_file)

    config: Config

    def _open_capture(self) -> cv2.VideoCapture:
        path = Path(self.config.uri).expanduser()
        if not path.is_file():
            raise SourceError(f"video source: file not found: {path}")
        return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)

    def open(self) -> SourceInfo:
        info = super().open()
        if self.config.loop:
            self._expected = None  # a looped file ends only at max_frames
            info.frame_count = self.config.max_frames
        return info

    def _grab(self) -> np.ndarray | None:
        img = super()._grab()
        if img is None and self.config.loop and self._index > 0:
            assert self.cap is not None
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
            return img if ok else None
        return img


class WebcamSource(_CaptureSource):
    """A local camera by device index (``uri: 0``) or device path (``/dev/video0``)."""

    name = "webcam"
    summary = "local camera by index or /dev/videoN; live (drop-oldest)"
    default_live = True

    def _open_capture(self) -> cv2.VideoCapture:
        uri = self.config.uri
        cap = cv2.VideoCapture(int(uri)) if uri.isdigit() else cv2.VideoCapture(uri)
        if self.config.fps:
            cap.set(cv2.CAP_PROP_FPS, self.config.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def describe(self) -> str:
        return f"camera {self.config.uri}"


class StreamSource(_CaptureSource):
    """A network stream: ``rtsp://``, ``http(s)://`` (MJPEG, HLS) or any URL FFmpeg opens.

    Opening is tried ``open_attempts`` times before the pipeline fails with a message naming
    the URL. When a running stream breaks (camera reboot, network drop, server restart) the
    source reconnects with exponential backoff (``reconnect_backoff_s`` doubling up to
    ``reconnect_max_backoff_s``), for ever unless ``reconnect_attempts`` is set; the pipeline
    keeps running meanwhile. While the stream is down, the event sinks publish an ``outage``
    event at once (after ``read_timeout_ms`` without a frame) and every ``outage_every_s``,
    and the source stage's ``down`` gauge is 1. The first frame after a reconnect carries
    ``meta["gap"]`` (seconds without frames, attempts), which the event sinks publish as a
    ``gap`` event and the source stage counts.

    Latency: by default FFmpeg probes the first ~5 MB or 5 s of a stream to learn its format,
    which here delayed the first frame by ~0.8 s and every later frame by ~0.23 s.
    ``low_delay`` (on by default; RTSP only) limits the probe to 32 bytes, the RTSP session description
    being enough for H.264: first frame ~0.09 s, steady lag ~0.08 s, the same frames
    bit-exact and in order (``benchmarks/rtsp_latency.py``). A camera whose session
    description lacks the codec parameters fails to open that way; set ``low_delay: false``.
    FFmpeg's ``fflags=nobuffer`` is not used: against GStreamer's RTSP server it gave no frame.
    ``rtsp_transport`` is TCP by default (no lost packets, so no smeared frames).
    """

    name = "stream"
    summary = "RTSP/HTTP network stream; live (drop-oldest), reconnects"
    default_live = True

    class Config(CaptureConfig):
        open_timeout_ms: int = Field(10000, ge=100, description="give up one connection attempt after this")
        read_timeout_ms: int = Field(5000, ge=100, description="a read stalled this long counts as a break")
        open_attempts: int = Field(3, ge=1, description="connection attempts at start before failing")
        reconnect: bool = Field(True, description="reconnect when the stream breaks (else the stream ends)")
        reconnect_attempts: int | None = Field(
            None, ge=1, description="attempts per break before the stream ends (None: for ever)"
        )
        reconnect_backoff_s: float = Field(0.5, gt=0, description="first wait before reconnecting")
        reconnect_max_backoff_s: float = Field(10.0, gt=0, description="longest wait between attempts")
        outage_every_s: float = Field(
            5.0,
            gt=0,
            le=3600,
            description="while the stream is down, an outage event at once and then every this many seconds",
        )
        rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP over TCP or UDP")
        low_delay: bool = Field(
            True,
            description="skip FFmpeg's stream probing (~0.15 s less lag, "
            "0.7 s faster start); false if a camera won't open",
        )
        ffmpeg_options: dict[str, str] = Field(
            {}, description="extra FFmpeg demuxer options, e.g. {probesize: '32', analyzeduration: '0'}"
        )

        @field_validator("uri")
        @classmethod
        def _check_url(cls, v: str) -> str:
            if "://" not in v:
                raise ValueError("expected a URL such as rtsp://host:8554/stream")
            return v

    config: Config

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.reconnects = 0
        self._pending_gap: dict[str, float | int] | None = None
        self._down: tuple[float, int] | None = None  # (monotonic time of the break, attempts)
        self.outage_every_s = config.outage_every_s

    def ffmpeg_options(self) -> str:
        """The ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` string for this stream."""
        opts = []
        if self.config.uri.startswith("rtsp"):
            opts.append(f"rtsp_transport;{self.config.rtsp_transport}")
            if self.config.low_delay:
                opts.append("probesize;32")
        opts += [f"{k};{v}" for k, v in self.config.ffmpeg_options.items()]
        return "|".join(opts)

    def _open_capture(self) -> cv2.VideoCapture:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = self.ffmpeg_options()  # read by this open
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self.config.open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self.config.read_timeout_ms,
        ]
        cap = cv2.VideoCapture(self.config.uri, cv2.CAP_FFMPEG, params)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Before any stage starts: for a network URL, check that something answers at its
        host and port (TCP), trying ``open_attempts`` times with backoff, as ``open`` would.
        The stream itself is opened by the stage (opening it twice would cost seconds).

        Raises:
            SourceError: nothing answers at the camera's host and port.
        """
        assert isinstance(config, StreamSource.Config)
        source = cls(config)
        for attempt in range(config.open_attempts):
            if attempt:
                time.sleep(source._backoff(attempt - 1))
            reach = tcp_reachable(config.uri, config.open_timeout_ms / 1000)
            if reach is None or reach[1]:
                return
        assert reach is not None  # the loop returned if the URI is not a network one
        raise SourceError(
            f"stream source: nothing answers at {reach[0]} ({config.uri}) after "
            f"{config.open_attempts} attempts: check the address and that the camera is on"
        )

    def open(self) -> SourceInfo:
        """Connect, trying ``open_attempts`` times with backoff.

        Raises:
            SourceError: no frame after every attempt (the message names the URL).
        """
        last: SourceError | None = None
        for attempt in range(self.config.open_attempts):
            if attempt:
                time.sleep(self._backoff(attempt - 1))
            try:
                return super().open()
            except SourceError as exc:
                last = exc
        hint = ""
        reach = tcp_reachable(self.config.uri, self.config.open_timeout_ms / 1000)
        if reach is not None and not reach[1]:
            hint = f"; nothing answers at {reach[0]}: check the address and that the camera is on"
        elif self.config.low_delay and self.config.uri.startswith("rtsp"):
            hint = "; if the camera plays elsewhere, try low_delay: false"
        raise SourceError(f"{last} (gave up after {self.config.open_attempts} attempts{hint})")

    def _backoff(self, n: int) -> float:
        return min(self.config.reconnect_backoff_s * 2**n, self.config.reconnect_max_backoff_s)

    def _grab(self) -> np.ndarray | None:
        """The next frame; after a break, reconnects with backoff (see the class docstring).

        Raises:
            SourceError: ``reconnect_attempts`` were used up without the stream coming back.
        """
        img = super()._grab()
        if img is not None or not self.config.reconnect:
            return img
        lost_at = time.monotonic()
        n = 0
        self._down = (lost_at, 0)
        while self.config.reconnect_attempts is None or n < self.config.reconnect_attempts:
            time.sleep(self._backoff(n))
            n += 1
            self._down = (lost_at, n)
            if self.cap is not None:
                self.cap.release()
            cap = self._open_capture()
            ok, img = cap.read() if cap.isOpened() else (False, None)
            if ok and img is not None:
                self.cap = cap
                self.reconnects += 1
                self._pending_gap = {
                    "gap_s": round(time.monotonic() - lost_at, 3),
                    "attempts": n,
                    "reconnects": self.reconnects,
                }
                self._down = None
                return img
            cap.release()
            self.cap = None
        raise SourceError(
            f"stream source: {self.config.uri} broke and did not come back after {n} "
            f"reconnect attempts in {time.monotonic() - lost_at:.1f} s (reconnect_attempts)"
        )

    def outage(self) -> dict[str, Any] | None:
        """``{"down_s", "attempts"}`` while reconnecting, else None."""
        down = self._down
        if down is None:
            return None
        return {"down_s": round(time.monotonic() - down[0], 3), "attempts": down[1]}

    def take_meta(self) -> dict[str, object]:
        """``{"gap": {...}}`` once after a reconnect, else ``{}``."""
        if self._pending_gap is None:
            return {}
        gap, self._pending_gap = self._pending_gap, None
        return {"gap": gap}


def decode_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """BGR uint8 ``(H, W, 3)`` pixels of an image file, or None when it cannot be read or
    decoded. The bytes are read with numpy and decoded in memory, so any file name works
    (``cv2.imread`` fails on some names that are not valid UTF-8). Above ``max_pixels`` a JPEG
    is decoded smaller (:func:`vidaffect.imaging.imagefile.decode_bounded`).

    Raises:
        ImageTooLarge: above ``max_pixels`` and not a JPEG.
    """
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    return decode_bounded(data, max_pixels)


def file_label(path: Path) -> str:
    """A file's name as valid UTF-8 text (undecodable bytes become U+FFFD), for events."""
    return os.fsencode(path.name).decode("utf-8", "replace")


class ImageFolderSource(Source):
    """The images of a folder, sorted by name, as a stream of frames (one frame per image).

    Each frame's ``meta["image_file"]`` is the image's file name (within the folder), which the
    ``jsonl`` and ``zmq_events`` sinks put in the frame event, so events can be matched to
    photos. Files with an image suffix that cannot be decoded are skipped (a warning on stderr
    names each once) and counted in ``skipped``; ``frame_count`` counts the files with an image suffix, so it is an upper bound
    when some are skipped.

    Raises:
        SourceError: at ``open``, the folder is missing or holds no decodable image; when
            looping, a whole pass over the folder decoded nothing (the files went away).
    """

    name = "images"
    summary = "folder of images (jpg, png, ...), one frame each, sorted by file name"

    class Config(CaptureConfig):
        fps: float | None = Field(None, gt=0, description="nominal fps written to video sinks")
        loop: bool = Field(False, description="start over after the last image")
        max_pixels: int = Field(
            DEFAULT_MAX_PIXELS,
            ge=64,
            description="larger images: JPEG decoded at 1/2-1/8 size, others skipped",
        )

        @field_validator("uri")
        @classmethod
        def _folder_exists(cls, v: str) -> str:
            return _existing(v, "image folder", Path.is_dir)

    config: Config

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.files: list[Path] = []
        self.skipped = 0
        self._warned: set[Path] = set()
        self._i = 0
        self._current: str | None = None
        self._first: tuple[int, np.ndarray] | None = None  # (index, pixels) decoded by open()
        self.live = config.mode == "live"

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Before any stage starts: the folder holds an image that decodes.

        Raises:
            SourceError: the folder is missing or holds no decodable image.
        """
        _check_opens(cls(config))  # type: ignore[arg-type]

    def open(self) -> SourceInfo:
        root = Path(self.config.uri).expanduser()
        if not root.is_dir():
            raise SourceError(f"images source: folder not found: {root}")
        self.files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"images source: no images in {root}")
        for i, path in enumerate(self.files):
            img = self._decode(path)
            if img is not None:
                self._first = (i, img)
                break
        else:
            raise SourceError(
                f"images source: none of the {len(self.files)} image files in {root} can be decoded"
            )
        w, h = output_size(img.shape[1], img.shape[0], self.config.resize)
        count = None if self.config.loop else len(self.files)
        if self.config.max_frames is not None:
            count = min(count or self.config.max_frames, self.config.max_frames)
        self._emitted = 0
        return SourceInfo(w, h, self.config.fps or 1.0, count, self.live, str(root))

    def _warn(self, path: Path, why: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            log.warning("images source: skipped %s (%s)", file_label(path), why)

    def _decode(self, path: Path) -> np.ndarray | None:
        """The image's pixels, None when it cannot be decoded or is too large (warned once)."""
        try:
            return decode_image(path, self.config.max_pixels)
        except ImageTooLarge as exc:
            self._warn(path, str(exc))
            return None

    def _next_image(self) -> tuple[Path, np.ndarray] | None:
        """The next decodable image in folder order (looping if configured), or None at the end."""
        misses = 0
        while True:
            if self._i >= len(self.files):
                if not self.config.loop:
                    return None
                self._i = 0
            i, path = self._i, self.files[self._i]
            self._i += 1
            img: np.ndarray | None
            if self._first is not None and self._first[0] == i:
                img, self._first = self._first[1], None
            else:
                img = self._decode(path)
            if img is not None:
                return path, img
            self.skipped += 1
            misses += 1
            self._warn(path, "cannot decode")
            if misses >= len(self.files):
                raise SourceError(f"images source: no image in {path.parent} can be decoded any more")

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self.config.max_frames is not None and self._emitted >= self.config.max_frames:
            return None
        item = self._next_image()
        if item is None:
            return None
        path, img = item
        h, w = img.shape[:2]
        self._emitted += 1
        self._current = file_label(path)
        return resize_image(img, output_size(w, h, self.config.resize)), None

    def take_meta(self) -> dict[str, object]:
        """``{"image_file": name}`` of the image just read."""
        return {} if self._current is None else {"image_file": self._current}


@vidaffect.hookimpl
def register_sources(register: vidaffect.Register) -> None:
    for cls in (VideoFileSource, WebcamSource, StreamSource, ImageFolderSource):
        register(cls)
