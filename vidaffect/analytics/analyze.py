"""One call for one image: faces, landmarks and emotions in this process, no pipeline.

    import vidaffect
    faces = vidaffect.analyze("group.jpg")          # or a BGR uint8 (H, W, 3) array
    for face in faces:
        print(face["bbox"], face["emotion"]["label"], face["emotion"]["score"])

The same detector and classifier plugins as a pipeline's run here, with the same options and
defaults (MTCNN's ``fast`` preset, the shipped ``default`` FER model and its crop margin), so a
photo gives the faces and labels that ``vidaffect run configs/images.yaml`` writes for it.
Models load on the first call for a given set of options and are reused by later calls
(an :class:`Analyzer` per set of options, kept for the life of the process; ``Analyzer``
itself gives explicit control and ``close()``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidaffect.events.build import face_event
from vidaffect.frames import Frame
from vidaffect.imaging.imagefile import DEFAULT_MAX_PIXELS, ImageTooLarge, decode_bounded


def read_image(
    image: np.ndarray | str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """A BGR uint8 ``(H, W, 3)`` array from a path (any format OpenCV reads) or an array
    (returned as it is after checking; a grayscale ``(H, W)`` array is converted to BGR).
    A file of more than ``max_pixels`` is decoded smaller if it is a JPEG, else refused, before
    its pixels are decoded (:mod:`vidaffect.imaging.imagefile`).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a readable image, or the array is not uint8 (H, W) or
            (H, W, 3); :class:`~vidaffect.imaging.imagefile.ImageTooLarge` (a ValueError) for a file
            above ``max_pixels`` that cannot be decoded smaller.
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        try:
            img = decode_bounded(np.fromfile(path, np.uint8), max_pixels)
        except ImageTooLarge as exc:
            raise ImageTooLarge(f"{path}: {exc}") from None
        if img is None:
            raise ValueError(f"{path}: not an image OpenCV can decode")
        return img
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if not (
        isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    ):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected a path or a uint8 (H, W, 3) BGR array, got {got}")
    return image


class Analyzer:
    """A detector and a classifier, loaded once, applied to single images.

    Args:
        detector: a registered detector plugin (``mtcnn``, ``haar``, or an installed one).
        classifier: a registered classifier plugin (``fer``, ``emotic``, ...).
        detector_options, classifier_options: the plugins' options, as in a pipeline file
            (``{"preset": "accurate"}``, ``{"checkpoint": "alexnet", "tta_flip": True}``).

    Raises:
        PluginError: no such plugin is installed.
        pydantic.ValidationError: an option is unknown or invalid.
    """

    def __init__(
        self,
        detector: str = "mtcnn",
        classifier: str = "fer",
        detector_options: dict[str, Any] | None = None,
        classifier_options: dict[str, Any] | None = None,
    ) -> None:
        from vidaffect.plugin_manager import get_registry

        reg = get_registry()
        det_cls, cls_cls = reg.get("detector", detector), reg.get("classifier", classifier)
        self.detector = det_cls(det_cls.Config(**(detector_options or {})))
        self.classifier = cls_cls(cls_cls.Config(**(classifier_options or {})))
        self.detector.open()
        self.classifier.open()
        self._lock = threading.Lock()  # plugins are not made for concurrent calls

    def analyze(self, image: np.ndarray | str | os.PathLike[str]) -> list[dict[str, Any]]:
        """The faces of ``image``; see :func:`analyze`."""
        frame = Frame(read_image(image), "image", 0, 0)
        with self._lock:
            frame.meta["faces"] = self.detector.detect([frame.image])[0].to_faces()
            self.classifier.classify([frame])
        faces = [face_event(face, frame.meta.get("labels")) for face in frame.faces]
        for face in faces:
            face.pop("track_id", None)  # no tracking on a single image
        return faces

    def close(self) -> None:
        self.detector.close()
        self.classifier.close()


_ANALYZERS: dict[str, Analyzer] = {}
_ANALYZERS_LOCK = threading.Lock()


def analyze(
    image: np.ndarray | str | os.PathLike[str],
    detector: str = "mtcnn",
    classifier: str = "fer",
    detector_options: dict[str, Any] | None = None,
    classifier_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Detect the faces of one image and classify each one's emotion, in this process.

    Args:
        image: a path (JPEG, PNG, ... anything OpenCV decodes) or a uint8 array, BGR
            ``(H, W, 3)`` as OpenCV gives it (convert RGB with ``img[..., ::-1]``), or
            grayscale ``(H, W)``.
        detector, classifier, detector_options, classifier_options: see :class:`Analyzer`;
            the defaults are a pipeline's (MTCNN ``fast``, the shipped ``default`` FER-2013
            ResNet-18). Models load on the first call with these arguments and are reused.

    Returns:
        One dict per face, in the detector's order, in the
        event schema's face format (``vidaffect/events/schemas/event.v5.json``): ``bbox``
        ``[x1, y1, x2, y2]`` float pixels of the image (origin top left), ``score`` (detector
        confidence 0-1), ``landmarks`` (MTCNN: five ``[x, y]`` points -- left eye, right eye,
        nose, left and right mouth corner; absent for detectors without landmarks) and
        ``emotion``: ``label``, ``score`` (its probability) and ``probs`` (label ->
        probability; FER-2013's seven classes sum to 1; EMOTIC adds ``categories`` and
        ``vad``, and each face a ``body_bbox``).

    Raises:
        FileNotFoundError, ValueError: see :func:`read_image`.
        PluginError, pydantic.ValidationError: see :class:`Analyzer`.
    """
    key = json.dumps(
        [detector, classifier, detector_options or {}, classifier_options or {}], sort_keys=True, default=str
    )
    with _ANALYZERS_LOCK:
        analyzer = _ANALYZERS.get(key)
        if analyzer is None:
            analyzer = _ANALYZERS[key] = Analyzer(detector, classifier, detector_options, classifier_options)
    return analyzer.analyze(image)
