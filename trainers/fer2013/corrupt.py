"""Camera corruptions of grayscale face crops, in the spirit of ImageNet-C (Hendrycks &
Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019): what a webcam, a CCTV camera or a tracker does to a face that
FER-2013's studio-like crops rarely show.

Two uses, kept apart on purpose:

* :func:`corrupt` applies one family at one of three fixed severities, with a fixed seed per
  image: the robustness benchmark (``python -m benchmarks.robustness``).
* :func:`random_corruption` draws a family and a continuous strength per training image
  (robustness training, ``--robust``). Its ranges are the same families' but not the
  benchmark's points: every benchmark level of the photometric families lies outside or
  between what training draws, so a gain on the benchmark is not a memorised setting.

All functions take and return uint8 ``(H, W)`` grayscale images (FER-2013 crops are 48x48).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

FAMILIES: tuple[str, ...] = (
    "dark",
    "low_contrast",
    "blur",
    "small",
    "jpeg",
    "noise",
    "rotate",
    "turn",
    "jitter",
    "occlude",
)
"""Corruption families, in table order."""

SEVERITIES: dict[str, tuple[float, float, float]] = {
    "dark": (1.8, 2.6, 3.6),  # gamma: out = 255 * (in / 255) ** gamma (a dim room)
    "low_contrast": (0.5, 0.3, 0.18),  # contrast kept around the mean (haze, backlight)
    "blur": (0.9, 1.4, 2.0),  # Gaussian sigma in pixels of a 48 px face (focus, motion)
    "small": (32, 24, 16),  # face side in pixels, downscaled and back (a far face)
    "jpeg": (35, 20, 10),  # JPEG quality (a compressed stream)
    "noise": (10, 18, 28),  # Gaussian sensor noise, sigma in grey levels
    "rotate": (10, 17, 25),  # in-plane rotation, degrees (head tilt), random sign
    "turn": (0.12, 0.22, 0.32),  # horizontal perspective: one side shrunk by this share
    "jitter": (0.06, 0.11, 0.16),  # tracked-box error: shift and scale by up to this share
    "occlude": (0.12, 0.22, 0.32),  # share of the face covered by a flat patch (hand, mask)
}
"""Fixed parameters of severities 1, 2 and 3 per family (units in the comments)."""

TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "dark": (1.2, 2.3),
    "low_contrast": (0.38, 0.8),
    "blur": (0.5, 1.7),
    "small": (18, 36),
    "jpeg": (14, 50),
    "noise": (4, 22),
    "rotate": (0, 20),
    "turn": (0.0, 0.26),
    "jitter": (0.0, 0.13),
    "occlude": (0.06, 0.26),
}
"""Ranges :func:`random_corruption` draws the parameter from, uniformly."""

WIDE_RANGES: dict[str, tuple[float, float]] = {
    "dark": (1.2, 4.2),
    "low_contrast": (0.12, 0.8),
    "blur": (0.5, 2.5),
    "small": (12, 36),
    "jpeg": (6, 50),
    "noise": (4, 34),
    "rotate": (0, 30),
    "turn": (0.0, 0.38),
    "jitter": (0.0, 0.19),
    "occlude": (0.06, 0.38),
}
"""Wider ranges (``--robust-ranges wide``) that run past the benchmark's strongest level of every
family: training then sees strengths like severity 3 (drawn continuously, never its exact value),
so a gain there is no longer a held-out result; the README says which ranges a model used."""

RANGES: dict[str, dict[str, tuple[float, float]]] = {"standard": TRAIN_RANGES, "wide": WIDE_RANGES}
"""The named sets of training ranges."""


def _dark(img: np.ndarray, gamma: float, rng: np.random.Generator) -> np.ndarray:
    lut = (255.0 * (np.arange(256) / 255.0) ** gamma).round().astype(np.uint8)
    return lut[img]


def _low_contrast(img: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    m = float(img.mean())
    return np.clip(m + c * (img.astype(np.float32) - m), 0, 255).round().astype(np.uint8)


def _blur(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def _small(img: np.ndarray, side: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape
    s = max(4, int(round(side)))
    down = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
    return cv2.resize(down, (w, h), interpolation=cv2.INTER_LINEAR)


def _jpeg(img: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(round(quality))])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def _warp(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = img.shape
    if m.shape == (3, 3):
        return cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _rotate(img: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape
    angle = degrees * (1 if rng.random() < 0.5 else -1)
    return _warp(img, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0))


def _turn(img: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A head turned sideways, roughly: one vertical edge keeps its height, the other is
    shrunk by ``share`` and pulled in by half of it (a horizontal perspective warp)."""
    h, w = img.shape
    d, x = share * h / 2, share * w / 2
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    if rng.random() < 0.5:  # the right side goes away
        dst = np.float32([[0, 0], [w - x, d], [w - x, h - d], [0, h]])
    else:
        dst = np.float32([[x, d], [w, 0], [w, h], [x, h - d]])
    return _warp(img, cv2.getPerspectiveTransform(src, dst))


def _jitter(img: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A tracker's box error: the crop shifted by up to ``share`` of its side in x and y and
    scaled by up to ``1 +- share`` (Kalman-predicted boxes between detections)."""
    h, w = img.shape
    dx, dy = rng.uniform(-share, share, 2) * (w, h)
    s = 1.0 + rng.uniform(-share, share)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, s)
    m[:, 2] += (dx, dy)
    return _warp(img, m)


def _occlude(img: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A flat patch (grey level drawn at random) over ``share`` of the face, of random aspect
    and position, as a hand, a cup or a mask would."""
    h, w = img.shape
    area = share * h * w
    aspect = rng.uniform(0.5, 2.0)
    ph = int(np.clip(round(np.sqrt(area * aspect)), 1, h))
    pw = int(np.clip(round(area / ph), 1, w))
    y, x = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
    out = img.copy()
    out[y : y + ph, x : x + pw] = rng.integers(0, 256)
    return out


_OPS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "dark": _dark,
    "low_contrast": _low_contrast,
    "blur": _blur,
    "small": _small,
    "jpeg": _jpeg,
    "noise": _noise,
    "rotate": _rotate,
    "turn": _turn,
    "jitter": _jitter,
    "occlude": _occlude,
}


def corrupt(images: np.ndarray, family: str, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` uint8 ``(N, H, W)`` under one family at severity 1, 2 or 3
    (:data:`SEVERITIES`); random parts (noise, signs, positions) are seeded per image from
    ``seed``, so a benchmark run is repeatable.

    Raises:
        KeyError: an unknown family. ValueError: severity not in 1..3.
    """
    if severity not in (1, 2, 3):
        raise ValueError(f"severity must be 1, 2 or 3, got {severity}")
    op, value = _OPS[family], SEVERITIES[family][severity - 1]
    base = FAMILIES.index(family) * 1000 + severity
    return np.stack([op(img, value, np.random.default_rng([seed, base, i])) for i, img in enumerate(images)])


def random_corruption(
    img: np.ndarray, rng: np.random.Generator, p: float = 0.5, ranges: str = "standard"
) -> np.ndarray:
    """With probability ``p``, one family drawn uniformly, with its parameter drawn from the
    ``ranges`` named in :data:`RANGES` (:data:`TRAIN_RANGES` by default); else ``img``
    unchanged. uint8 ``(H, W)`` in and out.

    Raises:
        KeyError: an unknown ``ranges`` name.
    """
    table = RANGES[ranges]
    if rng.random() >= p:
        return img
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    lo, hi = table[family]
    return _OPS[family](img, float(rng.uniform(lo, hi)), rng)
