"""The pipeline's framing of FER-2013 faces, for training and for the crop benchmark.

A FER-2013 face is a tight 48x48 crop; in a pipeline the classifier sees the MTCNN box of the
face instead, grown by the ``fer`` plugin's ``margin`` and squared. To learn where MTCNN puts
its box on these faces, each face is enlarged ``scale`` times (bicubic) and placed in the
middle of a frame three times its size whose border repeats its edge pixels, and goes through
the real detector plugin (:func:`frame_of`, :func:`detect_boxes`). A box is kept relative to
the face's own square, in units of its side (``[0, 0, 1, 1]`` is the face itself), so it
applies to the 48 px face directly.

Training with ``--framing P`` (:func:`random_framing`) then shows the model, with probability
P per face, the square the plugin would crop around that face's own MTCNN box, at a margin
drawn from :data:`MARGIN_RANGE`: the framing it meets in a pipeline, not only FER-2013's.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidaffect.imaging.boxes import iou
from vidaffect_trainers.common import read_cached, write_cached

MARGIN_RANGE: tuple[float, float] = (-0.05, 0.2)
"""Margins (share of the box's longer side added on each side, as the ``fer`` plugin's
``margin``) that :func:`random_framing` draws from, uniformly; the plugin's default is 0.1."""

OFFSET_RANGE: tuple[float, float] = (-0.05, 0.1)
"""Vertical shifts of the crop centre (share of the box side, down positive) drawn likewise:
a tracker's or another detector's box sits a little higher or lower than MTCNN's."""


def frame_of(face: np.ndarray, scale: int) -> tuple[np.ndarray, list[float]]:
    """A BGR uint8 frame ``(3*S, 3*S, 3)`` with ``face`` (uint8 gray ``(48, 48)``) enlarged
    ``scale`` times (``S = 48 * scale``, bicubic) in its middle, its border repeating the
    face's edge pixels, and the face's own square ``[x1, y1, x2, y2]`` in frame pixels."""
    big = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    s = big.shape[0]
    frame = cv2.copyMakeBorder(big, s, s, s, s, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), [float(s), float(s), float(2 * s), float(2 * s)]


def best_face(faces: list[dict[str, Any]], truth: list[float]) -> dict[str, Any] | None:
    """The detected face with the largest box overlap (IoU > 0.1) with ``truth``, else None."""
    scored = [(iou(f["bbox"], truth), i) for i, f in enumerate(faces)]
    scored = [s for s in scored if s[0] > 0.1]
    return faces[max(scored)[1]] if scored else None


def relative_box(bbox: list[float], truth: list[float]) -> np.ndarray:
    """``bbox`` (xyxy frame pixels) in units of the square ``truth``'s side, from its corner."""
    side = truth[2] - truth[0]
    return (np.asarray(bbox, np.float64) - [truth[0], truth[1], truth[0], truth[1]]) / side


def detect_boxes(images: np.ndarray, scale: int = 3, progress: bool = False) -> np.ndarray:
    """MTCNN's box on each face, relative to the face's square (:func:`relative_box`).

    Args:
        images: uint8 gray ``(N, H, W)`` faces (FER-2013: 48x48).
        scale: enlargement before detection (3: a 144 px face, well above MTCNN's 20 px
            minimum, as the crop benchmark uses).
        progress: print a count to stderr every 2,000 faces.

    Returns:
        float32 ``(N, 4)`` xyxy in face sides; a row of NaN where MTCNN found no face there.
        The detector is the ``mtcnn`` plugin with its default options (facenet-pytorch's
        weights, from its wheel).
    """
    from vidaffect_plugins.detectors.mtcnn import MTCNNDetector

    detector = MTCNNDetector(MTCNNDetector.Config())
    detector.open()
    out = np.full((len(images), 4), np.nan, np.float32)
    for i, face in enumerate(images):
        frame, truth = frame_of(face, scale)
        found = best_face(detector.detect([frame])[0].to_faces(), truth)
        if found is not None:
            out[i] = relative_box(found["bbox"], truth)
        if progress and (i + 1) % 2000 == 0:
            print(f"framing: {i + 1} of {len(images)} faces", file=sys.stderr, flush=True)
    return out


def framing_cache() -> Path:
    """The folder :func:`cached_boxes` keeps boxes in: ``$VIDAFFECT_CACHE/framing`` (default
    ``~/.cache/vidaffect/framing``)."""
    return Path(os.environ.get("VIDAFFECT_CACHE", Path.home() / ".cache" / "vidaffect")) / "framing"


def cached_boxes(images: np.ndarray, scale: int = 3, cache: Path | None = None) -> np.ndarray:
    """:func:`detect_boxes`, kept in ``cache`` (default :func:`framing_cache`) in a file named
    by a hash of the faces and ``scale``, and reused while they are the same (12 minutes
    for FER-2013's 28,709 training faces on one core, once per machine)."""
    key = hashlib.sha256(np.ascontiguousarray(images).tobytes() + str(scale).encode()).hexdigest()
    path = (cache or framing_cache()) / f"{key[:16]}.npz"
    boxes = read_cached(path, key, "boxes")
    if boxes is None:
        boxes = detect_boxes(images, scale, progress=True)
        write_cached(path, key, "boxes", boxes)
    return boxes


def crop_box(img: np.ndarray, box: np.ndarray, margin: float, offset_y: float = 0.0) -> np.ndarray:
    """The square the ``fer`` plugin crops around ``box`` (relative, :func:`relative_box`),
    grown by ``margin`` and moved down by ``offset_y`` of the box side, taken from ``img``
    (uint8 gray ``(H, W)``) with its border repeated, resized back to ``(H, W)`` (bilinear)."""
    h, w = img.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2 * w, ((y1 + y2) / 2 + offset_y * max(x2 - x1, y2 - y1)) * h
    sx, sy = w / (side * w), h / (side * h)  # output pixels per input pixel
    m = np.float32([[sx, 0, w / 2 - sx * cx], [0, sy, h / 2 - sy * cy]])
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def random_framing(img: np.ndarray, box: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """With probability ``p`` (and when MTCNN found the face: ``box`` not NaN), the plugin's
    crop around ``box`` at a margin and vertical shift drawn from :data:`MARGIN_RANGE` and
    :data:`OFFSET_RANGE`; else ``img`` unchanged. uint8 ``(H, W)`` in and out."""
    if rng.random() >= p or not np.isfinite(box).all():
        return img
    return crop_box(img, box, float(rng.uniform(*MARGIN_RANGE)), float(rng.uniform(*OFFSET_RANGE)))
