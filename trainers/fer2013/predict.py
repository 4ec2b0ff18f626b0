"""Batched softmax predictions of a FER model over faces (used by training, evaluation and
distillation)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vidaffect.errors import CheckpointError
from vidaffect.models.checkpoint import CheckpointMeta
from vidaffect_trainers.common import cpu_memory_format
from vidaffect_trainers.fer2013.augment import FaceTensorDataset


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: DataLoader, tta_flip: bool = False) -> np.ndarray:
    """Softmax probabilities ``(N, num_classes)`` float32 for every sample of ``loader``.

    With ``tta_flip`` the probabilities of the image and its mirror image are averaged. The
    model runs in :func:`~vidaffect_trainers.common.cpu_memory_format` (converted in place, so that
    validation during training leaves it in the format it trains in): ``channels_last`` as in
    the plugin, unless a convolution is too narrow for it.
    """
    memory_format = cpu_memory_format(model)
    model.eval().to(memory_format=memory_format)
    out = []
    for x, *_ in loader:  # (x, y) or (x, y, soft target)
        x = x.contiguous(memory_format=memory_format)
        p = F.softmax(model(x), dim=1)
        if tta_flip:
            p = (p + F.softmax(model(torch.flip(x, dims=[3])), dim=1)) / 2
        out.append(p.numpy())
    return np.concatenate(out)


def predict_images(
    model: nn.Module, meta: CheckpointMeta, images: np.ndarray, batch_size: int = 256,
    tta_flip: bool = False,
) -> np.ndarray:
    """Softmax probabilities float32 ``(N, len(meta.labels))`` for uint8 ``(N, H, W)`` faces.

    Faces are resized to ``meta.input_size`` when they differ and normalised with the
    checkpoint's mean/std.

    Raises:
        CheckpointError: the checkpoint expects colour input (FER models are grayscale).
    """
    if meta.in_channels != 1:
        raise CheckpointError(
            f"expected a grayscale (in_channels=1) checkpoint, got in_channels={meta.in_channels}"
        )
    h, w = meta.input_size
    if images.shape[1:] != (h, w):
        images = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images])
    dummy = np.zeros(len(images), np.int64)
    ds = FaceTensorDataset(images, dummy, meta.mean[0], meta.std[0], augment=False)
    if not len(ds):
        return np.zeros((0, len(meta.labels)), np.float32)
    return predict(model, DataLoader(ds, batch_size=batch_size), tta_flip=tta_flip)
