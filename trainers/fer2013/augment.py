"""Training augmentation and tensor conversion for grayscale face crops (torchvision v2)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
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

    With ``views`` = 3 (consistency training,
    :func:`~vidaffect_trainers.fer2013.consistency.consistency_loss`), ``x`` is float32
    ``(3, 1, H, W)``: the face as above (a corruption with probability ``robust``), then two
    copies each with one corruption drawn for it (always, at ``robust_ranges`` strengths), all
    three through the same framing and the same random geometry and colour (random erasing
    drawn per copy), as in AugMix (Hendrycks et al., ICLR 2020).

    Raises:
        ValueError: ``views`` other than 1 or 3.
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
        views: int = 1,
    ) -> None:
        if views not in (1, 3):
            raise ValueError(f"views must be 1 or 3, got {views}")
        self.views = views if augment else 1
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

    def _rng_here(self) -> np.random.Generator:
        if self._rng is None:  # one per DataLoader worker, seeded by torch's per-worker seed
            self._rng = np.random.default_rng([self.seed, torch.initial_seed() % 2**32])
        return self._rng

    def _normalised(self, img: torch.Tensor) -> torch.Tensor:
        x = (img.float() / 255.0 - self.mean) / self.std
        return self.erase(x) if self.erase is not None else x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        img = self.images[i]
        if self.views == 3:
            x = self._consistency_views(i)
        else:
            if self.robust or self.framing:
                raw = self._framed(i)
                if self.robust:
                    raw = random_corruption(raw, self._rng_here(), self.robust, self.robust_ranges)
                img = torch.from_numpy(np.ascontiguousarray(raw)).unsqueeze(0)
            if self.transform is not None:
                img = self.transform(img)
            x = self._normalised(img)
        if self.soft is not None:
            return x, int(self.labels[i]), self.soft[i]
        return x, int(self.labels[i])

    def _framed(self, i: int) -> np.ndarray:
        """Face ``i``, uint8 ``(H, W)``, in the pipeline's framing with probability ``framing``."""
        if not self.framing:
            return self.raw[i]
        assert self.boxes is not None
        return random_framing(self.raw[i], self.boxes[i], self._rng_here(), self.framing)

    def _consistency_views(self, i: int) -> torch.Tensor:
        rng, raw = self._rng_here(), self._framed(i)
        first = random_corruption(raw, rng, self.robust, self.robust_ranges) if self.robust else raw
        copies = [first] + [random_corruption(raw, rng, 1.0, self.robust_ranges) for _ in range(2)]
        imgs = [tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(c)).unsqueeze(0)) for c in copies]
        if self.transform is not None:
            imgs = list(self.transform(*imgs))  # one draw of geometry and colour for the three
        return torch.stack([self._normalised(img.as_subclass(torch.Tensor)) for img in imgs])
