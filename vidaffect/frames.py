"""Frames and per-frame results as small dataclasses that check their arrays on creation.

Coordinate frame: pixels of the full-resolution frame, origin top-left, x right, y down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
from typing_extensions import NotRequired


class Emotion(TypedDict):
    """A classifier's answer for one face (``face["emotion"]``), or a track's smoothed one
    (``face["smoothed"]``): the top-1 ``label`` and its ``score`` (probability, [0, 1]), and
    ``probs`` in the order of the frame's ``meta["labels"]``; the EMOTIC context model adds the
    ``categories`` above their thresholds and ``vad`` (valence, arousal, dominance, 1-10)."""

    label: str
    score: float
    probs: NotRequired[list[float] | None]
    categories: NotRequired[list[str]]
    vad: NotRequired[dict[str, float]]


class Face(TypedDict):
    """One face in ``frame.meta["faces"]``: the detector's ``bbox`` (xyxy pixels of the full
    frame) and ``score``; optional five ``landmarks`` (``[x, y]`` pixels: left eye, right eye,
    nose, left and right mouth corners); with tracking its ``track_id`` and ``tracked`` (the box
    is the tracker's prediction); the classifiers' results (``emotion``, ``smoothed``, and the
    context model's ``body_bbox``). Plugins may add their own keys (the
    wire contract lets unknown keys through, :mod:`vidaffect.runtime.frame_meta`)."""

    bbox: list[float]
    score: float
    landmarks: NotRequired[list[list[float]]]
    track_id: NotRequired[int | None]
    tracked: NotRequired[bool]
    emotion: NotRequired[Emotion | None]
    smoothed: NotRequired[Emotion | None]
    body_bbox: NotRequired[list[float]]


def _check(name: str, arr: np.ndarray, shape: tuple[int | None, ...]) -> None:
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")


@dataclass
class Detections:
    """Faces found in one frame.

    Attributes:
        boxes: float32 ``(n, 4)`` ``[x1, y1, x2, y2]`` pixels (xyxy).
        scores: float32 ``(n,)`` detector confidence in [0, 1].
        landmarks: float32 ``(n, 5, 2)`` ``(x, y)`` pixels in the order left eye, right eye,
            nose, left mouth corner, right mouth corner (MTCNN's order; "left" is the image's
            left), or ``None`` when the detector gives none.

    Raises:
        ValueError: on arrays of the wrong shape (the message says expected vs actual).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = (
            np.asarray(self.boxes, np.float32).reshape(-1, 4)
            if len(self.boxes) == 0
            else np.asarray(self.boxes, np.float32)
        )
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        _check("boxes", self.boxes, (None, 4))
        if len(self.scores) != len(self.boxes):
            raise ValueError(f"scores: expected shape ({len(self.boxes)},), got {self.scores.shape}")
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, np.float32)
            if len(self.landmarks) == 0:
                self.landmarks = self.landmarks.reshape(0, 5, 2)
            _check("landmarks", self.landmarks, (len(self.boxes), 5, 2))

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        """No faces: boxes ``(0, 4)``, scores ``(0,)``, landmarks ``(0, 5, 2)``, all float32."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    def to_faces(self) -> list[Face]:
        """Per-face dicts for the message header: ``bbox`` (xyxy pixels), ``score`` and, when
        the detector gives them, ``landmarks`` (five ``[x, y]``); floats rounded to 2 (4 for
        the score) decimals."""
        faces: list[Face] = []
        for i in range(len(self)):
            face: Face = {
                "bbox": [round(float(v), 2) for v in self.boxes[i]],
                "score": round(float(self.scores[i]), 4),
            }
            if self.landmarks is not None:
                face["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks[i]]
            faces.append(face)
        return faces


@dataclass
class Frame:
    """One video frame travelling through the pipeline.

    Attributes:
        image: uint8 ``(H, W, 3)`` BGR (OpenCV's colour order); any strides (encoding copies
            a non-contiguous image once).
        stream: stream id (the topic of its events).
        seq: sequence number within the stream, from 0, consecutive among emitted frames.
        ts_ns: capture time, ``time.time_ns()`` when the source read the frame.
        pts_ms: position in a video file in milliseconds; ``None`` for cameras, streams and
            photos.
        meta: results so far, JSON-compatible: from the source ``fps``, ``source``,
            ``source_incarnation`` (which start of the source process numbered it) and, when
            they apply, ``gap`` and ``image_file``; from the detector ``faces`` (list of dicts
            with ``bbox``, ``score``, ``landmarks``, with tracking ``track_id`` and ``tracked``),
            ``detected`` and ``tracks_ended``; from the classifier ``labels`` (label names, in
            the order of each face's ``emotion["probs"]``) and ``emotion`` in each face; from
            smoothing ``changes``.

    Raises:
        ValueError: ``image`` is not a uint8 ``(H, W, 3)`` array.
    """

    image: np.ndarray
    stream: str
    seq: int
    ts_ns: int
    pts_ms: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(f"Frame.image: expected a uint8 (H, W, 3) BGR array, got {got}")

    @property
    def faces(self) -> list[Face]:
        """``meta["faces"]``, created empty when missing."""
        return self.meta.setdefault("faces", [])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


def safe_stream_name(stream: str) -> str:
    """A stream id as a file-name part: characters other than letters, digits, ``.``, ``_``
    and ``-`` replaced by ``_`` (``"cam/1"`` -> ``"cam_1"``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", stream) or "_"
