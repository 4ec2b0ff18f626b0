"""The plugin interfaces: sources, detectors, classifiers and sinks.

A plugin is a class deriving from one of these bases, with a ``name`` and a ``Config``
(a pydantic model; unknown keys are rejected), registered through a hook in
:mod:`vidaffect.hookspecs`. One instance lives in one stage process; its methods are called
from that process only. Images are uint8 ``(H, W, 3)`` BGR (OpenCV's colour order); boxes
are xyxy pixels of the full frame.

Lifecycle: ``__init__(config)`` -> ``open(...)`` -> many calls -> ``close()``. ``close`` is
always called, also after an error or a stop request, so files get finalised.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from vidaffect.frames import Detections, Frame


class PluginConfig(BaseModel):
    """Base of every plugin's options model: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


class Plugin(ABC):
    """Common base: a registered ``name``, a ``Config`` model and a one-line ``summary``.

    Attributes:
        streams: the pipeline's stream ids in the order of its sources, set by the runtime
            before ``open`` (empty when a plugin is used on its own).
        restarts: how many times the runtime has restarted this stage worker after a crash
            (``on_error: restart``), set before ``open``: a file sink then continues what it
            wrote (``jsonl``) or rolls to a part file (``video``), never starts its file afresh.
        preload: heavy modules the plugin imports when it opens (``("torch",)``); the fork
            server that stage processes are forked from imports them once for all stages
            (:func:`vidaffect.runtime.runners.start_stage_server`). Optional: a module
            left out is imported by the stage itself; one that fails to import is skipped.
    """

    name: ClassVar[str]
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    kind: ClassVar[str]
    preload: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: PluginConfig) -> None:
        self.config = config
        self.streams: list[str] = []
        self.restarts = 0

    def counters(self) -> dict[str, int]:
        """The plugin's own counters (e.g. ``{"events_dropped": 3}``), reported with the stage's
        and shown after the run when not zero (``plugin_<name>`` in the metrics); default none.
        Called in the stage process between frames."""
        return {}

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Check what this plugin needs from the machine and that validating a config cannot
        (a desktop, a device), in the launching process before any stage starts, so a run
        fails at once rather than after the models have loaded. The default checks nothing.

        Raises:
            PluginError: the machine lacks what the plugin needs (any
                :class:`~vidaffect.errors.VidaffectError` is reported with the stage's name).
        """

    def close(self) -> None:
        """Release resources; called exactly once, also after errors."""


@dataclass
class SourceInfo:
    """What a source knows once opened.

    Attributes:
        width, height: output frame size in pixels (after any resize).
        fps: nominal frames per second (the file's, the camera's or the target fps).
        frame_count: frames the source will emit, when known (files without loop), else None.
        live: True for cameras and streams (drop-oldest buffering), False for files
            (wait, never drop).
        description: human-readable origin (path, URL, device).
    """

    width: int
    height: int
    fps: float
    frame_count: int | None
    live: bool
    description: str


class Source(Plugin):
    """Produces frames. ``read`` blocks until the next frame or returns None at the end."""

    kind = "source"

    @classmethod
    def is_live(cls, config: PluginConfig) -> bool:
        """Whether this source will run live (drop-oldest) with ``config``, known before it
        opens, so the pipeline can size its queues for latency (live) or throughput (files).
        The default reads a ``mode`` option (``"live"``); sources that are always live
        (cameras) override it."""
        return getattr(config, "mode", None) == "live"

    @abstractmethod
    def open(self) -> SourceInfo:
        """Open the device, file or URL.

        Raises:
            SourceError: it cannot be opened (missing file, dead camera, unreachable URL).
        """

    @abstractmethod
    def read(self) -> tuple[np.ndarray, float | None] | None:
        """Next frame as ``(image, pts_ms)``, or None at the end of the stream.

        ``image`` is uint8 (H, W, 3) BGR; ``pts_ms`` the frame's position in milliseconds from
        the start of a file, or None for live sources (cameras, streams) and photos, whose
        frames are timed by their capture time.
        """

    def undelivered(self) -> int:
        """Frames this source announced but could not deliver, asked once after ``read``
        returned None: for a file, frames its container declares (its frame count, after
        ``fps`` subsampling and ``max_frames``) that could not be decoded, as in a truncated or
        damaged file. The runtime counts them as ``unreadable`` and warns. The default: 0."""
        return 0

    def take_meta(self) -> dict[str, Any]:
        """Extra ``meta`` for the frame just read, e.g. ``{"gap": {"gap_s": 3.2, ...}}`` after
        a reconnect; called once after each ``read``. The default adds nothing."""
        return {}

    outage_every_s: float = 5.0
    """While the stream is down, seconds between outage notices (the first goes at once)."""

    def outage(self) -> dict[str, Any] | None:
        """While a live stream is down (``read`` is reconnecting): ``{"down_s": seconds since
        the break, "attempts": reconnect attempts so far}``; None while frames flow (the
        default). Called from the stage's main thread while ``read`` runs in the capture
        thread, so the runtime can publish ``outage`` events while the outage lasts."""
        return None


class Detector(Plugin):
    """Finds faces in whole frames."""

    kind = "detector"

    def open(self) -> None:
        """Load models; called once in the stage process before the first ``detect``."""

    @abstractmethod
    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """Detect faces in each image (uint8 (H, W, 3) BGR); one :class:`Detections` per image."""


@dataclass(frozen=True)
class FacePatch:
    """The part of a frame a classifier reads around each face, so that between hosts only
    that part travels (see :meth:`Classifier.face_patch`).

    Attributes:
        margin: fraction of the face box's longer side added on every side of the square it
            reads (as :func:`vidaffect_plugins.classifiers.crops.square_crop`).
        side: pixels of the square's side once sent (larger squares are shrunk to it, area
            interpolation); twice the model's input or more, so the classifier's own resize
            sees nearly what it would in the full frame.
        gray: the classifier reads gray levels only (BGR is converted, 1 byte per pixel).
    """

    margin: float
    side: int
    gray: bool


class Classifier(Plugin):
    """Adds per-face results (emotion probabilities, ...) to frames that carry faces."""

    kind = "classifier"

    @classmethod
    def face_patch(cls, config: PluginConfig) -> FacePatch | None:
        """What this classifier, with these options, reads around each face; None (the
        default) when it reads more of the frame (a context model). With a patch, a
        ``runner: ray`` pipeline whose sinks need no pixels sends the classifier these squares
        instead of whole frames (:func:`vidaffect.runtime.codec.encode_patches`)."""
        return None

    def __init__(self, config: PluginConfig) -> None:
        super().__init__(config)
        self.labels: list[str] = []
        """Label names in the order of each face's ``emotion["probs"]`` (set by ``open``)."""

    def open(self) -> None:
        """Load models; called once in the stage process before the first ``classify``."""

    @abstractmethod
    def classify(self, frames: list[Frame]) -> None:
        """Annotate every face dict in ``frame.faces`` of each frame, in place.

        A face dict carries ``bbox`` (xyxy pixels of the frame); the classifier adds its result
        under ``emotion``: ``{"label": str, "score": float, "probs": [float, ...]}`` with
        ``probs`` in the order of ``frame.meta["labels"]``, which the classifier sets. A
        classifier may add keys (the ``emotic`` one adds ``categories`` and ``vad`` to
        ``emotion`` and ``body_bbox`` to the face) and sets ``emotion`` to None for a face it
        cannot classify (a tracked box that left the frame).
        """


class Sink(Plugin):
    """Consumes annotated frames (files, windows, sockets)."""

    kind = "sink"
    needs_pixels: ClassVar[bool] = True
    """False for a sink that reads only ``frame.meta`` and ``frame.size`` (events, logs): the
    runtime then sends it each frame without its pixels (``frame.image`` is black and takes no
    memory), which saves a copy of every frame per such sink."""

    wants_run_stats: ClassVar[bool] = False
    """True for a sink that shows the whole run's health: the supervisor then sends the
    per-stage counters once a second, and the stage hands them to :meth:`run_stats`."""

    def run_stats(self, stages: dict[str, dict[str, Any]]) -> None:
        """The run's per-stage counters (stage name -> ``frames_in``, ``frames_out``,
        ``dropped``, ``lost``, ``latency_p50_ms``, ... as in the end-of-run table), about once
        a second, between frames; only for a sink with :attr:`wants_run_stats`."""

    @classmethod
    def wants_pixels(cls, config: PluginConfig) -> bool:
        """Whether this sink, with these options, reads ``frame.image`` (default:
        :attr:`needs_pixels`); override when an option decides, as the ``webhook`` sink's
        ``snapshot`` does."""
        return cls.needs_pixels

    def open(self) -> None:
        """Prepare outputs; errors here (unwritable path, no display) stop the pipeline."""

    @abstractmethod
    def write(self, frame: Frame) -> None:
        """Handle one frame; ``frame.image`` is read-only (copy before drawing)."""

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        """Called once per stream at its end (EOS), before ``close``.

        ``info`` holds ``frames`` (frames the stream emitted), the source's end-of-stream
        counters such as ``dropped``, and with smoothing ``changes`` (one dict per still-labelled
        track, ``{"track_id", "from", "to": None, "score": None}``; see
        :func:`vidaffect.events.build.stream_end_change_events`).
        """

    def outage(self, stream: str, info: dict[str, Any]) -> None:
        """A live stream is down: called when its outage starts and then every few seconds
        while it lasts (the source's :attr:`Source.outage_every_s`), between frames.

        ``info`` holds ``down_s`` (seconds since the break), ``attempts`` (reconnect attempts
        so far), ``frames`` (frames the stream sent before) and ``last_ts_ns`` (capture time of
        the last frame, 0 if none); see :func:`vidaffect.events.build.build_outage_event`. The
        default does nothing.
        """


PLUGIN_KINDS: dict[str, type[Plugin]] = {
    "source": Source,
    "detector": Detector,
    "classifier": Classifier,
    "sink": Sink,
}
