"""Batched softmax predictions of a FER model over faces (used by training, evaluation and
distillation)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from vidaffect.errors import CheckpointError
from vidaffect.models.checkpoint import CheckpointMeta
from vidaffect_trainers.calibration import softmax
from vidaffect_trainers.common import cpu_memory_format
from vidaffect_trainers.fer2013.augment import FaceTensorDataset


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, loader: DataLoader, tta_flip: bool = False) -> np.ndarray:
    """Logits float32 ``(V, N, num_classes)`` for every sample of ``loader``: one view (``V``
    = 1), or with ``tta_flip`` the image and its mirror image (``V`` = 2).

    The model runs in :func:`~vidaffect_trainers.common.cpu_memory_format` (converted in place,
    so that validation during training leaves it in the format it trains in):
    ``channels_last`` as in the plugin, unless a convolution is too narrow for it.
    """
    device = next(model.parameters()).device
    memory_format = cpu_memory_format(model) if device.type == "cpu" else torch.channels_last
    model.eval().to(memory_format=memory_format)
    out = []
    for x, *_ in loader:  # (x, y) or (x, y, soft target)
        x = x.to(device).contiguous(memory_format=memory_format)
        views = [model(x)] + ([model(torch.flip(x, dims=[3]))] if tta_flip else [])
        out.append(torch.stack(views).float().cpu().numpy())
    return np.concatenate(out, axis=1)


def probs_from_logits(views: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float32 ``(N, C)``: the mean over views of ``softmax(logits / temperature)``."""
    return np.mean([softmax(v, temperature) for v in views], axis=0).astype(np.float32)


def predict(
    model: torch.nn.Module, loader: DataLoader, tta_flip: bool = False, temperature: float = 1.0
) -> np.ndarray:
    """Softmax probabilities ``(N, num_classes)`` float32 for every sample of ``loader``, at
    ``temperature``; with ``tta_flip`` those of the image and its mirror image are averaged."""
    return probs_from_logits(predict_logits(model, loader, tta_flip), temperature)


def image_logits(
    model: nn.Module,
    meta: CheckpointMeta,
    images: np.ndarray,
    batch_size: int = 256,
    tta_flip: bool = False,
) -> np.ndarray:
    """Logits float32 ``(V, N, len(meta.labels))`` for uint8 ``(N, H, W)`` faces (see
    :func:`predict_logits`).

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
        return np.zeros((2 if tta_flip else 1, 0, len(meta.labels)), np.float32)
    return predict_logits(model, DataLoader(ds, batch_size=batch_size), tta_flip=tta_flip)


def predict_images(
    model: nn.Module,
    meta: CheckpointMeta,
    images: np.ndarray,
    batch_size: int = 256,
    tta_flip: bool = False,
) -> np.ndarray:
    """Softmax probabilities float32 ``(N, len(meta.labels))`` for uint8 ``(N, H, W)`` faces,
    at the checkpoint's calibrated temperature (``meta.temperature``), as the classifier
    plugin gives them.

    Raises:
        CheckpointError: the checkpoint expects colour input (FER models are grayscale).
    """
    return probs_from_logits(image_logits(model, meta, images, batch_size, tta_flip), meta.temperature)
