"""Face patches: a frame sent as the squares its classifier reads around each face, not whole.

Between hosts, a ``runner: ray`` pipeline whose sinks need no pixels sends the classifier, per
face, the square :class:`~vidaffect.api.FacePatch` describes (the face box grown by its margin,
clipped to the frame), shrunk to at most ``side`` pixels and, for a gray model, one byte per
pixel: 9 KB for a face of any size with the FER-2013 models (48x48 input), against 6.2 MB for a
1080p frame. The receiver pastes each square back, enlarged to its size, into a black frame of
the original shape, so every classifier plugin runs unchanged; only the pixels it never reads
are missing.

Wire form (inside a ``frame`` message, :mod:`.codec`): the header has ``image_shape``,
``patches`` (per face square ``[x1, y1, x2, y2, w, h]``: where it sits in the frame, pixels,
and the sent size) and ``gray``; one uint8 buffer holds the squares' bytes one after the other.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from vidaffect.frames import Frame


class PatchError(ValueError):
    """Patches that do not fit their frame or their buffer."""


def square(bbox: list[float], margin: float, width: int, height: int) -> tuple[int, int, int, int, int]:
    """The square around ``bbox`` (xyxy pixels) grown by ``margin`` of its longer side on every
    side, as ``(x1, y1, x2, y2, side)``: clipped to the ``width`` x ``height`` frame, and the
    unclipped side in pixels."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * margin)
    s = max(1, int(round(side)))
    left, top = int(round((x1 + x2) / 2 - side / 2)), int(round((y1 + y2) / 2 - side / 2))
    return max(0, left), max(0, top), min(width, left + s), min(height, top + s), s


def cut_patches(frame: Frame, margin: float, side: int, gray: bool) -> tuple[dict[str, Any], bytes]:
    """The patches of ``frame``'s faces: header fields (``patches``, ``gray``) and the bytes.

    Args:
        margin, side, gray: as :class:`~vidaffect.api.FacePatch`.
    """
    image = frame.image
    h, w = image.shape[:2]
    where: list[list[int]] = []
    chunks: list[bytes] = []
    for face in frame.faces:
        x1, y1, x2, y2, s = square(face["bbox"], margin, w, h)
        if x2 <= x1 or y2 <= y1:  # the box is outside the frame: nothing to read
            continue
        region = image[y1:y2, x1:x2]
        scale = min(1.0, side / s)
        out_w, out_h = max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale))
        if (out_w, out_h) != (x2 - x1, y2 - y1):
            region = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
        if gray:
            region = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
        where.append([x1, y1, x2, y2, out_w, out_h])
        chunks.append(np.ascontiguousarray(region).tobytes())
    return {"patches": where, "gray": gray}, b"".join(chunks)


def paste_patches(shape: tuple[int, int, int], patches: Any, gray: Any, data: memoryview) -> np.ndarray:
    """A black uint8 ``shape`` (H, W, 3) BGR frame (checked by the codec) with every patch
    pasted back at its size.

    Raises:
        PatchError: a malformed patch list, a square outside the frame, or a buffer whose
            size is not the patches' total.
    """
    if not isinstance(patches, list) or not isinstance(gray, bool):
        raise PatchError("patches must be a list and gray a bool")
    h, w = shape[0], shape[1]
    image = np.zeros(shape, np.uint8)
    channels = 1 if gray else 3
    offset = 0
    for p in patches:
        if not (isinstance(p, list) and len(p) == 6 and all(isinstance(v, int) for v in p)):
            raise PatchError(f"bad patch {p!r}")
        x1, y1, x2, y2, pw, ph = p
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0 < pw <= x2 - x1 and 0 < ph <= y2 - y1):
            raise PatchError(f"patch {p!r} does not fit a {w}x{h} frame")
        n = pw * ph * channels
        if offset + n > data.nbytes:
            raise PatchError("patch buffer shorter than its patches")
        region: np.ndarray = np.frombuffer(data[offset : offset + n], np.uint8).reshape((ph, pw, channels))
        offset += n
        if gray:
            region = cv2.cvtColor(region, cv2.COLOR_GRAY2BGR)
        if (pw, ph) != (x2 - x1, y2 - y1):
            region = cv2.resize(region, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        image[y1:y2, x1:x2] = region
    if offset != data.nbytes:
        raise PatchError(f"patch buffer has {data.nbytes} bytes, the patches {offset}")
    return image
