"""Emotion classifier for FER-2013-style models trained by ``trainers/fer2013``.

Each face is cut out as a square around its box with ``margin`` of the box side added on
every side (none by default: the square of the box's longer side). Of the margins tried, 0 did
best both on FER-2013 test faces placed in frames and found by MTCNN
(``python -m benchmarks.pipeline_crop``; 1.5-4.8 points of top-1 above 0.1 on 2,967 faces) and,
narrowly, on 241 real faces labelled by eye (``python -m benchmarks.real_faces``: 0.9-1.7
points; without its one crying clip 0.1 is ahead for two of the four shipped models).
The crop is then converted to the model's channels
(grayscale for FER-2013), resized to its input size and normalised with the checkpoint's
mean/std. All faces of a batch of frames go through the model in one forward pass.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

import vidaffect
from vidaffect.api import Classifier, FacePatch, PluginConfig
from vidaffect.errors import CheckpointError
from vidaffect.frames import Face, Frame
from vidaffect.models.device import DeviceOption, check_device, resolve_device
from vidaffect.models.meta import read_meta
from vidaffect.models.zoo import resolve_checkpoint
from vidaffect_plugins.classifiers.crops import check_finite, square_crop, to_model_input


class FERClassifier(Classifier):
    """Per-face softmax probabilities over the checkpoint's labels (7 for FER-2013)."""

    name = "fer"
    summary = "FER-2013 emotion model (7 classes) from a vidaffect checkpoint"
    preload = ("torch",)

    class Config(DeviceOption):
        checkpoint: str = Field(
            "default",
            description="shipped model name (default = resnet18, robust, accurate, alexnet) or a .safetensors path",
        )
        margin: float = Field(
            0.0,
            ge=-0.25,
            le=1.0,
            description="crop margin, fraction of the box's longer side per side "
            "(negative: a tighter square)",
        )
        tta_flip: bool = Field(False, description="average with the mirrored face (2x the cost)")
        max_batch: int = Field(64, ge=1, description="faces per forward pass")

        @field_validator("checkpoint")
        @classmethod
        def _checkpoint_exists(cls, v: str) -> str:
            try:
                meta = read_meta(resolve_checkpoint(v))
            except CheckpointError as exc:
                raise ValueError(str(exc)) from None
            if meta.task != "multiclass":
                raise ValueError(
                    f"checkpoint {v!r} is a {meta.task} model, the fer classifier needs multiclass"
                )
            return v

    config: Config

    @classmethod
    def face_patch(cls, config: PluginConfig) -> FacePatch:
        """The square :meth:`classify` crops (``margin``, plus 2% for rounding), sent at four
        times the model's input side (gray for a one-channel model): 192x192, 37 KB, for the
        FER-2013 models. On 69 faces of the group photos and two clips at the default
        ``margin: 0``, every top-1 was the whole frame's and no probability moved more than 0.06;
        at three times the side (20 KB) one top-1 changed (a near tie) and a probability moved
        0.095 (``tests/test_patches.py``). At ``margin: 0.1`` three times was enough (0.036)."""
        assert isinstance(config, cls.Config)
        meta = read_meta(resolve_checkpoint(config.checkpoint))
        return FacePatch(max(config.margin, 0.0) + 0.02, 4 * max(meta.input_size), meta.in_channels == 1)

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """A GPU asked for (``device``) is there, before any stage starts.

        Raises:
            PluginError: PyTorch sees no such GPU.
        """
        check_device(config, "fer classifier")

    def open(self) -> None:
        import torch

        from vidaffect.models.checkpoint import load_checkpoint

        self.device = resolve_device(self.config.device, "fer classifier")
        self.model, self.meta = load_checkpoint(resolve_checkpoint(self.config.checkpoint))
        self.model = self.model.to(self.device).to(memory_format=torch.channels_last)
        self.labels = list(self.meta.labels)
        self.predict([np.zeros((64, 64, 3), np.uint8)] * 2)  # warm-up: the first call sets up kernels

    def predict(self, crops: list[np.ndarray]) -> np.ndarray:
        """Probabilities float32 (n, len(labels)) for uint8 BGR face crops: the softmax of the
        logits divided by the checkpoint's calibrated temperature (``meta.temperature``,
        temperature scaling, Guo et al. ICML 2017), so a score means what it says.

        Raises:
            CheckpointError: the model gave a NaN or infinite output.
        """
        import torch

        if not crops:
            return np.zeros((0, len(self.labels)), np.float32)
        m = self.meta
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), self.config.max_batch):
                x = torch.from_numpy(
                    to_model_input(
                        crops[i : i + self.config.max_batch], m.input_size, m.in_channels, m.mean, m.std
                    )
                )
                x = x.to(self.device).contiguous(memory_format=torch.channels_last)
                t = m.temperature  # calibrated on the validation split (1.0: not calibrated)
                p = torch.softmax(self.model(x) / t, dim=1)
                if self.config.tta_flip:
                    p = (p + torch.softmax(self.model(torch.flip(x, dims=[3])) / t, dim=1)) / 2
                out.append(p.float().cpu().numpy())
        return check_finite(np.concatenate(out), self.config.checkpoint)

    def classify(self, frames: list[Frame]) -> None:
        crops: list[np.ndarray] = []
        owners: list[Face] = []
        for frame in frames:
            frame.meta["labels"] = self.labels
            for face in frame.faces:
                crops.append(square_crop(frame.image, face["bbox"], self.config.margin))
                owners.append(face)
        probs = self.predict(crops)
        for face, p in zip(owners, probs):
            k = int(p.argmax())
            face["emotion"] = {
                "label": self.labels[k],
                "score": round(float(p[k]), 4),
                "probs": [round(float(v), 4) for v in p],
            }


@vidaffect.hookimpl
def register_classifiers(register: vidaffect.Register) -> None:
    register(FERClassifier)
