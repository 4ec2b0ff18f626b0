"""Drawing of face results onto frames (boxes, labels, track ids, probability bars).

Images are uint8 ``(H, W, 3)`` BGR; colours are BGR tuples; boxes are xyxy pixels of the
full frame. Sizes (font, line thickness, bar length) scale with the frame's shorter side
so labels stay readable from ~512 px up to 1080p and beyond.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

PALETTE: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),       # red
    "disgust": (40, 140, 40),     # dark green
    "fear": (170, 60, 150),       # purple
    "happy": (40, 200, 250),      # yellow
    "sad": (200, 110, 30),        # blue
    "surprise": (30, 140, 250),   # orange
    "neutral": (190, 190, 190),   # light grey
}
"""BGR colour per FER emotion label."""

FALLBACK_COLOUR: tuple[int, int, int] = (230, 220, 80)
"""BGR colour (teal) for faces without an emotion or with a label outside :data:`PALETTE`."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX
MAX_BARS = 8


def label_colour(label: str | None) -> tuple[int, int, int]:
    """BGR colour of an emotion label (case-insensitive); :data:`FALLBACK_COLOUR` otherwise."""
    if label is None:
        return FALLBACK_COLOUR
    return PALETTE.get(label.lower(), FALLBACK_COLOUR)


def _text_colour(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = bg
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


class _Style:
    """Font scale and thicknesses for a frame of a given size."""

    def __init__(self, width: int, height: int) -> None:
        unit = min(width, height) / 512.0
        self.font_scale = float(np.clip(0.5 * unit, 0.35, 2.5))
        self.text_thick = max(1, round(self.font_scale * 1.8))
        self.box_thick = max(1, round(2 * unit))
        self.pad = max(2, round(3 * unit))
        self.bar_len = max(24, round(60 * unit))


def _put_label(img: np.ndarray, text: str, x1: int, y1: int,
               colour: tuple[int, int, int], st: _Style) -> None:
    h_img, w_img = img.shape[:2]
    (tw, th), base = cv2.getTextSize(text, _FONT, st.font_scale, st.text_thick)
    bw, bh = tw + 2 * st.pad, th + base + 2 * st.pad
    top = y1 - bh if y1 - bh >= 0 else max(0, y1)  # above the box, else inside its top edge
    top = min(top, max(0, h_img - bh))
    left = int(np.clip(x1, 0, max(0, w_img - bw)))
    cv2.rectangle(img, (left, top), (left + bw - 1, top + bh - 1), colour, cv2.FILLED)
    cv2.putText(img, text, (left + st.pad, top + st.pad + th), _FONT, st.font_scale,
                _text_colour(colour), st.text_thick, cv2.LINE_AA)


def _put_prob_bars(img: np.ndarray, probs: Sequence[float], names: Sequence[str],
                   box: tuple[int, int, int, int], st: _Style) -> None:
    h_img, w_img = img.shape[:2]
    scale = st.font_scale * 0.75
    thick = max(1, st.text_thick - 1)
    sizes = [cv2.getTextSize(n, _FONT, scale, thick) for n in names]
    name_w = max(w for (w, _), _ in sizes)
    row_h = max(h + b for (_, h), b in sizes) + st.pad
    panel_w = name_w + st.bar_len + 3 * st.pad
    panel_h = row_h * len(names) + st.pad
    x1, y1, x2, _ = box
    gap = st.pad
    if x2 + gap + panel_w <= w_img:
        left = x2 + gap
    elif x1 - gap - panel_w >= 0:
        left = x1 - gap - panel_w
    else:
        left = w_img - panel_w
    left = int(np.clip(left, 0, max(0, w_img - panel_w)))
    top = int(np.clip(y1, 0, max(0, h_img - panel_h)))
    roi = img[top:top + panel_h, left:left + panel_w]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken for contrast
    for i, (name, p) in enumerate(zip(names, probs)):
        y = top + st.pad + i * row_h
        cv2.putText(img, name, (left + st.pad, y + row_h - st.pad), _FONT, scale,
                    (235, 235, 235), thick, cv2.LINE_AA)
        bx = left + 2 * st.pad + name_w
        length = round(float(np.clip(p, 0.0, 1.0)) * st.bar_len)
        cv2.rectangle(img, (bx, y + 1), (bx + st.bar_len, y + row_h - st.pad), (90, 90, 90), 1)
        if length > 0:
            cv2.rectangle(img, (bx, y + 1), (bx + length, y + row_h - st.pad),
                          label_colour(name), cv2.FILLED)


def annotate(image_bgr: np.ndarray, faces: Sequence[dict[str, Any]],
             labels: Sequence[str] | None = None, prob_bars: bool = False) -> np.ndarray:
    """Draw face results onto a copy of ``image_bgr``.

    Per face: the box in the colour of its emotion label (the track's ``smoothed`` emotion
    when there is one, else the frame's ``emotion``), a filled tag ``"happy 0.87"``
    (emotion label and probability; ``"face 0.99"`` with the detector score when there is
    no emotion), `` #3`` appended when the face has a ``track_id``, and with ``prob_bars``
    a small panel of horizontal bars, one per label (the ``MAX_BARS`` most likely when there
    are more labels), beside the box and inside the image. A context classifier's
    ``body_bbox`` is drawn as a thin box and its ``vad`` as a tag ``"V6.8 A5.9 D6.4"`` below
    the face.

    Args:
        image_bgr: uint8 ``(H, W, 3)`` BGR; may be read-only, it is never modified.
        faces: face dicts as in ``frame.meta["faces"]``: ``bbox`` (xyxy pixels), ``score``,
            optional ``emotion`` ``{"label", "score", "probs"}`` and ``track_id``.
        labels: label names in the order of ``emotion["probs"]`` (``frame.meta["labels"]``);
            needed only for bar names, bars are named ``0, 1, ...`` without it.
        prob_bars: draw the per-label probability bars.

    Returns:
        A new uint8 ``(H, W, 3)`` BGR C-contiguous array.

    Raises:
        ValueError: ``image_bgr`` is not a uint8 ``(H, W, 3)`` array.
        KeyError: a face without ``bbox``, or an ``emotion`` without ``label`` or ``score``.
    """
    img = np.asarray(image_bgr)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image_bgr: expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
    out = np.array(img, dtype=np.uint8, order="C", copy=True)
    st = _Style(out.shape[1], out.shape[0])
    for face in faces:
        x1, y1, x2, y2 = (int(round(float(v))) for v in face["bbox"])
        emotion = face.get("smoothed") or face.get("emotion")  # a track's smoothed label if any
        if emotion is not None:
            colour = label_colour(emotion.get("label"))
            text = f"{emotion['label']} {float(emotion['score']):.2f}"
        else:
            colour = FALLBACK_COLOUR
            text = f"face {float(face.get('score', 0.0)):.2f}"
        if face.get("track_id") is not None:
            text += f" #{int(face['track_id'])}"
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, st.box_thick)
        if face.get("body_bbox") is not None:
            bx1, by1, bx2, by2 = (int(round(float(v))) for v in face["body_bbox"])
            cv2.rectangle(out, (bx1, by1), (bx2, by2), colour, 1)
        _put_label(out, text, x1, y1, colour, st)
        vad = (face.get("emotion") or {}).get("vad")  # not smoothed: the frame's own values
        if vad:
            tag = f"V{float(vad['valence']):.1f} A{float(vad['arousal']):.1f} D{float(vad['dominance']):.1f}"
            (_, th), base = cv2.getTextSize(tag, _FONT, st.font_scale, st.text_thick)
            _put_label(out, tag, x1, y2 + 3 * st.pad + th + base, colour, st)  # just below the box
        probs = None if emotion is None else emotion.get("probs")
        if prob_bars and probs:
            names = list(labels) if labels is not None and len(labels) == len(probs) \
                else [str(i) for i in range(len(probs))]
            top = np.argsort(-np.asarray(probs, np.float64), kind="stable")[:MAX_BARS]
            if len(probs) > MAX_BARS:  # many labels (EMOTIC's 26): the most likely ones
                probs, names = [probs[i] for i in top], [names[i] for i in top]
            _put_prob_bars(out, probs, names, (x1, y1, x2, y2), st)
    return out
