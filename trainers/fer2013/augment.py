"""Training augmentation and tensor conversion for grayscale face crops (torchvision v2)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from vidaffect_trainers.fer2013.corrupt import random_corruption
from vidaffect_trainers.fer2013.framing import random_framing


def train_transform(size: int = 48) -> v2.Transform:
    """Random shift/zoom/rotation, horizontal flip, brightness/contrast, random erasing.

    Input and output: uint8 tensor ``(1, size, size)``; erasing happens later on floats.
    """
    return v2.Compose(
        [
            v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3),
        ]
    )


class FaceTensorDataset(Dataset[tuple[torch.Tensor, ...]]):
    """Wraps uint8 ``(N, H, W)`` images into normalised float32 ``(1, H, W)`` tensors.

    ``(pixel / 255 - mean) / std``; with ``augment`` the train transform and random
    erasing (Zhong et al., AAAI 2020) are applied; before them, with ``framing`` > 0 and
    ``boxes`` (float32 ``(N, 4)``, MTCNN's box per face relative to it, NaN where none), with that
    probability the crop the ``fer`` plugin takes around the face's box
    (:func:`~vidaffect_trainers.fer2013.framing.random_framing`), and with ``robust`` > 0, with
    that probability, one camera corruption of a random family and strength
    (:func:`~vidaffect_trainers.fer2013.corrupt.random_corruption`). Items are ``(x, label)``, or
    ``(x, label, soft)`` when per-image soft targets float32 ``(N, C)`` are given
    (distillation, :mod:`vidaffect_trainers.fer2013.distill`).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: float,
        std: float,
        augment: bool,
        soft: np.ndarray | None = None,
        robust: float = 0.0,
        seed: int = 0,
        robust_ranges: str = "standard",
        boxes: np.ndarray | None = None,
        framing: float = 0.0,
    ) -> None:
        self.raw = np.ascontiguousarray(images)
        self.boxes = boxes
        self.framing = framing if augment and boxes is not None else 0.0
        self.robust_ranges = robust_ranges
        self.images = torch.from_numpy(self.raw).unsqueeze(1)
        self.robust = robust if augment else 0.0
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self.labels = torch.from_numpy(labels)
        self.soft = None if soft is None else torch.from_numpy(np.ascontiguousarray(soft, np.float32))
        self.mean, self.std = mean, std
        self.transform = train_transform(images.shape[-1]) if augment else None
        self.erase = v2.RandomErasing(p=0.5, scale=(0.02, 0.15), value=0.0) if augment else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        img = self.images[i]
        if self.robust or self.framing:
            if self._rng is None:  # one per DataLoader worker, seeded by torch's per-worker seed
                self._rng = np.random.default_rng([self.seed, torch.initial_seed() % 2**32])
            raw = self.raw[i]
            if self.framing:
                assert self.boxes is not None
                raw = random_framing(raw, self.boxes[i], self._rng, self.framing)
            if self.robust:
                raw = random_corruption(raw, self._rng, self.robust, self.robust_ranges)
            img = torch.from_numpy(np.ascontiguousarray(raw)).unsqueeze(0)
        if self.transform is not None:
            img = self.transform(img)
        x = (img.float() / 255.0 - self.mean) / self.std
        if self.erase is not None:
            x = self.erase(x)
        if self.soft is not None:
            return x, int(self.labels[i]), self.soft[i]
        return x, int(self.labels[i])
