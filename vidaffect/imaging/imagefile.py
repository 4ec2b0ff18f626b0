"""Decoding image files with a pixel limit, checked before the pixels are decoded.

A 20000x20000 PNG is 1.2 GB of BGR pixels once decoded (and the detector's image pyramid
several times that), although the file may be a few kilobytes. The size is read from the
file's header first (Pillow, which parses headers without decoding); a JPEG above the limit
is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's own scaled decoding, any other format
above the limit is refused.
"""

from __future__ import annotations

import io
import threading
import warnings

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 50_000_000  # 50 MP: any camera photo; 150 MB of BGR pixels
_PIL_LIMIT = threading.Lock()  # Pillow's own limit is a global, lifted only while a header is read
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


class ImageTooLarge(ValueError):
    """An image whose pixels exceed the limit and cannot be decoded smaller."""


def header_size(data: np.ndarray) -> tuple[int, int, str] | None:
    """``(width, height, format)`` from an encoded image's header (``"JPEG"``, ``"PNG"``, ...),
    without decoding its pixels; None when Pillow does not recognise it."""
    from PIL import Image

    try:
        with _PIL_LIMIT, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # only the header is read
            try:
                with Image.open(io.BytesIO(data.tobytes())) as im:
                    return im.size[0], im.size[1], str(im.format)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except Exception:  # not an image Pillow knows: OpenCV may still decode it
        return None


def decode_bounded(data: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """BGR uint8 ``(H, W, 3)`` pixels of an encoded image (``data``: its bytes as uint8), or
    None when it cannot be decoded. A JPEG of more than ``max_pixels`` is decoded at the
    largest of 1/2, 1/4, 1/8 of its width and height that fits.

    Raises:
        ImageTooLarge: more than ``max_pixels`` and not a JPEG (or too large even at 1/8).
    """
    size = header_size(data) if data.size else None
    flag = cv2.IMREAD_COLOR
    if size is not None and size[0] * size[1] > max_pixels:
        width, height, fmt = size
        factor = next((f for f in (2, 4, 8) if (width // f) * (height // f) <= max_pixels), None)
        if fmt != "JPEG" or factor is None:
            raise ImageTooLarge(
                f"{width}x{height} {fmt} image ({width * height / 1e6:.0f} MP) is above the "
                f"limit of {max_pixels / 1e6:.0f} MP (max_pixels)"
            )
        flag = _REDUCED[factor]
    return cv2.imdecode(data, flag) if data.size else None
