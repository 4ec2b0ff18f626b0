"""Face crops for the classifiers: square, with a margin, grayscale or RGB, normalised."""

from __future__ import annotations

import cv2
import numpy as np

from vidaffect.errors import CheckpointError


def square_crop(image: np.ndarray, bbox: list[float] | np.ndarray, margin: float) -> np.ndarray:
    """The square region around ``bbox`` grown by ``margin`` of its side on every side.

    Args:
        image: uint8 (H, W, 3) BGR frame.
        bbox: [x1, y1, x2, y2] pixels.
        margin: fraction of the box's longer side added on each side (0.1 -> 1.2x the side;
            negative shrinks it: -0.025 -> 0.95x).

    Returns:
        uint8 (S, S, 3) BGR, S the grown side rounded to pixels; parts outside the frame are
        filled by edge replication, and a box wholly outside the frame gives a black crop.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * margin)
    left, t = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -left), max(0, -t)
    pad_r, pad_b = max(0, left + s - w), max(0, t + s - h)
    crop = image[max(0, t) : min(h, t + s), max(0, left) : min(w, left + s)]
    if crop.size == 0:
        return np.zeros((s, s, 3), np.uint8)
    if pad_l or pad_t or pad_r or pad_b:
        crop = cv2.copyMakeBorder(crop, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    return crop


def to_model_input(
    crops: list[np.ndarray], size: tuple[int, int], channels: int, mean: list[float], std: list[float]
) -> np.ndarray:
    """Stack crops into a float32 (n, C, H, W) batch for a model.

    Args:
        crops: uint8 (h, w, 3) BGR crops of any size.
        size: model input ``(height, width)`` in pixels; crops are resized to it (area
            interpolation when shrinking, bilinear when enlarging), aspect ratio not kept.
        channels: 1 for gray (OpenCV ``BGR2GRAY``), 3 for RGB.
        mean, std: ``channels`` values each, on the [0, 1] scale; the output is
            ``(x / 255 - mean) / std`` per channel.
    """
    h, w = size
    out = np.empty((len(crops), channels, h, w), np.float32)
    for i, crop in enumerate(crops):
        interp = cv2.INTER_AREA if crop.shape[0] > h else cv2.INTER_LINEAR
        img = cv2.resize(crop, (w, h), interpolation=interp)
        if channels == 1:
            out[i, 0] = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        else:
            out[i] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
    out /= 255.0
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return (out - m) / s


def check_finite(values: np.ndarray, checkpoint: str) -> np.ndarray:
    """``values`` (a model's outputs) unchanged when every one is finite.

    Raises:
        CheckpointError: a NaN or infinite output, naming the checkpoint (damaged weights, or
            a model trained to diverge), instead of a JSON error later in a sink.
    """
    if not np.isfinite(values).all():
        bad = int(values.size - np.isfinite(values).sum())
        raise CheckpointError(
            f"checkpoint {checkpoint!r} gave {bad} non-finite outputs (NaN or infinity) "
            f"for {len(values)} faces; its weights are probably damaged"
        )
    return values
