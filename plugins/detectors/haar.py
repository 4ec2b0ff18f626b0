"""OpenCV Haar-cascade face detector (Viola & Jones, CVPR 2001).

The cascade XML files ship with opencv-python 4.x (``cv2.data.haarcascades``); OpenCV 5's
wheel has no ``CascadeClassifier``. It needs no neural network, but at 640 px it is no faster
than MTCNN's ``fast`` preset and finds fewer faces; no landmarks (``python -m
benchmarks.detectors``). Scores are the cascade's level weights squashed to (0, 1) with a
logistic function.

``min_neighbors`` 5 (OpenCV's default is 3) is backed by that benchmark (48 real frames,
113 faces found by MTCNN ``accurate``): 3 found 67 of them plus 14 boxes matching none, 5 found
64 plus 6, 8 found 60 plus 3.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

import vidaffect
from vidaffect.api import Detector, PluginConfig
from vidaffect.errors import PluginError
from vidaffect.frames import Detections


class HaarDetector(Detector):
    """Haar cascade: boxes (n, 4) xyxy pixels, scores (n,), no landmarks."""

    name = "haar"
    summary = "OpenCV Haar cascade (frontal faces, no landmarks, no neural network)"

    class Config(PluginConfig):
        cascade: str = Field(
            "haarcascade_frontalface_default.xml", description="file in cv2.data.haarcascades, or a path"
        )
        scale_factor: float = Field(1.1, gt=1.0, description="image pyramid step")
        min_neighbors: int = Field(5, ge=0, description="overlapping hits needed to keep a face")
        min_face_size: int = Field(30, ge=8, description="smallest face, pixels")

    config: Config

    def open(self) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise PluginError(
                "haar detector: this OpenCV build has no CascadeClassifier (use opencv-python 4.x)"
            )
        path = Path(self.config.cascade)
        if not path.is_file():
            # cv2's stubs do not declare its data submodule (the folder of the cascade files)
            path = Path(cv2.data.haarcascades) / self.config.cascade  # type: ignore[attr-defined]
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise PluginError(f"haar detector: cannot load cascade {path}")

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
            s = self.config.min_face_size
            rects, _, weights = self.cascade.detectMultiScale3(
                gray,
                scaleFactor=self.config.scale_factor,
                minNeighbors=self.config.min_neighbors,
                minSize=(s, s),
                outputRejectLevels=True,
            )
            if len(rects) == 0:
                out.append(Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))
                continue
            r = np.asarray(rects, np.float32)
            boxes = np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], axis=1)
            scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))
            out.append(Detections(boxes, scores))
        return out


@vidaffect.hookimpl
def register_detectors(register: vidaffect.Register) -> None:
    register(HaarDetector)
