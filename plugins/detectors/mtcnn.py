"""MTCNN face detector (facenet-pytorch 2.5.3; its P/R/O-net weights ship inside the wheel).

Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded Convolutional
Networks", IEEE SPL 2016. Three cascaded CNNs over an image pyramid: the pyramid starts at
scale ``12 / min_face_size`` and shrinks by ``factor`` per level, so a larger
``min_face_size`` and a smaller ``factor`` mean fewer levels and a faster detector.

``python -m benchmarks.detectors`` on 2 CPU cores (48 real frames of at most 640 pixels a side,
one frame per call) gave a median 65 ms per frame with facenet-pytorch's pyramid
(min_face_size 20, factor 0.709: ``preset: accurate``) and 27 ms with min_face_size 40, factor
0.6 (this plugin's default, ``preset: fast``); faces smaller than ``min_face_size`` pixels are
missed (``fast`` found 75% of the faces ``accurate`` found, all of the larger ones).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

import vidaffect
from vidaffect.api import Detector, PluginConfig
from vidaffect.frames import Detections
from vidaffect.models.device import DeviceOption, check_device, resolve_device

PRESETS = {
    "fast": {"min_face_size": 40, "factor": 0.6},
    "accurate": {"min_face_size": 20, "factor": 0.709},
}


class MTCNNDetector(Detector):
    """MTCNN: boxes (n, 4) xyxy pixels, scores (n,), 5-point landmarks (n, 5, 2)."""

    name = "mtcnn"
    summary = "MTCNN (facenet-pytorch): boxes, scores, 5-point landmarks"
    preload = ("torch", "facenet_pytorch.models.mtcnn")

    class Config(DeviceOption):
        preset: Literal["fast", "accurate"] = Field(
            "fast", description="fast: min_face_size 40, factor 0.6; accurate: 20, 0.709"
        )
        min_face_size: int | None = Field(None, ge=8, description="smallest face, pixels (overrides preset)")
        factor: float | None = Field(
            None, gt=0.1, lt=1.0, description="pyramid scale step (overrides preset)"
        )
        thresholds: list[float] = Field(
            [0.6, 0.7, 0.7], min_length=3, max_length=3, description="P-, R-, O-net thresholds"
        )
        min_score: float = Field(0.9, ge=0.0, le=1.0, description="drop faces scoring below this")
        max_side: int | None = Field(
            None, ge=64, description="detect on a copy downscaled to this longest side; boxes mapped back"
        )

        @model_validator(mode="after")
        def _fill_preset(self) -> MTCNNDetector.Config:
            preset = PRESETS[self.preset]
            if self.min_face_size is None:
                self.min_face_size = preset["min_face_size"]  # type: ignore[assignment]
            if self.factor is None:
                self.factor = preset["factor"]
            return self

    config: Config

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """A GPU asked for (``device``) is there, before any stage starts.

        Raises:
            PluginError: PyTorch sees no such GPU.
        """
        check_device(config, "mtcnn detector")

    def open(self) -> None:
        from facenet_pytorch import MTCNN

        c = self.config
        self.mtcnn = MTCNN(
            keep_all=True,
            min_face_size=c.min_face_size,
            factor=c.factor,
            thresholds=list(c.thresholds),
            post_process=False,
            device=resolve_device(c.device, "mtcnn detector"),
        )
        # warm-up: torch sets up its kernels on the first call, which would otherwise add
        # a few hundred milliseconds to the first frame of a live stream
        self.detect([np.random.default_rng(0).integers(0, 256, (160, 160, 3), np.uint8)])

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        import torch

        with torch.inference_mode():
            return [self._detect_one(img) for img in images]

    def _detect_one(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        scale = 1.0
        if self.config.max_side and max(h, w) > self.config.max_side:
            scale = self.config.max_side / max(h, w)
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        boxes, probs, points = self.mtcnn.detect(rgb, landmarks=True)
        if boxes is None:
            return Detections.empty()
        boxes = np.asarray(boxes, np.float32) / scale
        probs = np.asarray(probs, np.float32)
        points = np.asarray(points, np.float32) / scale
        keep = probs >= self.config.min_score
        boxes, probs, points = boxes[keep], probs[keep], points[keep]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return Detections(boxes, probs, points)


@vidaffect.hookimpl
def register_detectors(register: vidaffect.Register) -> None:
    register(MTCNNDetector)
