"""Drawing of face results onto frames (boxes, labels, track ids, probability bars).

Images are uint8 ``(H, W, 3)`` BGR; colours are BGR tuples; boxes are xyxy pixels of the
full frame. Sizes (font, line thickness, bar length) scale with the frame's shorter side
so labels stay readable from ~512 px up to 1080p and beyond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vidaffect.frames import Face

PALETTE: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),  # red
    "disgust": (40, 140, 40),  # dark green
    "fear": (170, 60, 150),  # purple
    "happy": (40, 200, 250),  # yellow
    "sad": (200, 110, 30),  # blue
    "surprise": (30, 140, 250),  # orange
    "neutral": (190, 190, 190),  # light grey
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


Rect = tuple[int, int, int, int]  # left, top, right, bottom (exclusive) pixels


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_rect(img_size: tuple[int, int], text: str, x1: int, y1: int, st: _Style) -> Rect:
    """Where the tag of ``text`` goes: above the box at ``(x1, y1)``, else inside its top edge,
    always inside the ``(width, height)`` image."""
    w_img, h_img = img_size
    (tw, th), base = cv2.getTextSize(text, _FONT, st.font_scale, st.text_thick)
    bw, bh = tw + 2 * st.pad, th + base + 2 * st.pad
    top = y1 - bh if y1 - bh >= 0 else max(0, y1)
    top = min(top, max(0, h_img - bh))
    left = int(np.clip(x1, 0, max(0, w_img - bw)))
    return left, top, left + bw, top + bh


def _put_label(img: np.ndarray, text: str, rect: Rect, colour: tuple[int, int, int], st: _Style) -> None:
    left, top, right, bottom = rect
    (_, th), _ = cv2.getTextSize(text, _FONT, st.font_scale, st.text_thick)
    cv2.rectangle(img, (left, top), (right - 1, bottom - 1), colour, cv2.FILLED)
    cv2.putText(
        img,
        text,
        (left + st.pad, top + st.pad + th),
        _FONT,
        st.font_scale,
        _text_colour(colour),
        st.text_thick,
        cv2.LINE_AA,
    )


def _bar_metrics(names: Sequence[str], st: _Style) -> tuple[float, int, int, int, int]:
    """``(font scale, thickness, name width, row height, panel width)`` of a bar panel."""
    scale = st.font_scale * 0.75
    thick = max(1, st.text_thick - 1)
    sizes = [cv2.getTextSize(n, _FONT, scale, thick) for n in names]
    name_w = max(w for (w, _), _ in sizes)
    row_h = max(h + b for (_, h), b in sizes) + st.pad
    return scale, thick, name_w, row_h, name_w + st.bar_len + 3 * st.pad


def _panel_rect(
    img_size: tuple[int, int], names: Sequence[str], box: Rect, st: _Style, avoid: Sequence[Rect]
) -> Rect | None:
    """A place for a face's bar panel inside the image that covers none of ``avoid`` (the
    other faces' boxes and tags, and panels already placed): right of the box, left of it,
    below it, or above it, each slid along the box's side; None when no place is free."""
    w_img, h_img = img_size
    *_, row_h, panel_w = _bar_metrics(names, st)
    panel_h = row_h * len(names) + st.pad
    if panel_w > w_img or panel_h > h_img:
        return None
    x1, y1, x2, y2 = box
    gap = st.pad
    candidates = []
    for top in (y1, y2 - panel_h, (y1 + y2 - panel_h) // 2):
        candidates += [(x2 + gap, top), (x1 - gap - panel_w, top)]
    for left in (x1, x2 - panel_w):
        candidates += [(left, y2 + gap), (left, y1 - gap - panel_h)]
    for left, top in candidates:
        left = int(np.clip(left, 0, w_img - panel_w))
        top = int(np.clip(top, 0, h_img - panel_h))
        rect = (left, top, left + panel_w, top + panel_h)
        if not any(_overlaps(rect, other) for other in avoid):
            return rect
    return None


def _put_prob_bars(
    img: np.ndarray, probs: Sequence[float], names: Sequence[str], rect: Rect, st: _Style
) -> None:
    scale, thick, name_w, row_h, _ = _bar_metrics(names, st)
    left, top, right, bottom = rect
    roi = img[top:bottom, left:right]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken for contrast
    for i, (name, p) in enumerate(zip(names, probs)):
        y = top + st.pad + i * row_h
        cv2.putText(
            img, name, (left + st.pad, y + row_h - st.pad), _FONT, scale, (235, 235, 235), thick, cv2.LINE_AA
        )
        bx = left + 2 * st.pad + name_w
        length = round(float(np.clip(p, 0.0, 1.0)) * st.bar_len)
        cv2.rectangle(img, (bx, y + 1), (bx + st.bar_len, y + row_h - st.pad), (90, 90, 90), 1)
        if length > 0:
            cv2.rectangle(img, (bx, y + 1), (bx + length, y + row_h - st.pad), label_colour(name), cv2.FILLED)


def annotate(
    image_bgr: np.ndarray,
    faces: Sequence[Face],
    labels: Sequence[str] | None = None,
    prob_bars: bool = False,
) -> np.ndarray:
    """Draw face results onto a copy of ``image_bgr``.

    Per face: the box in the colour of its emotion label (the track's ``smoothed`` emotion
    when there is one, else the frame's ``emotion``), a filled tag ``"happy 0.87"``
    (emotion label and probability; ``"face 0.99"`` with the detector score when there is
    no emotion), `` #3`` appended when the face has a ``track_id``, and with ``prob_bars``
    a small panel of horizontal bars, one per label (the ``MAX_BARS`` most likely when there
    are more labels), beside the box and inside the image, where it covers no other face's box
    or tag (left out where no such place exists, so crowded frames show the tags alone); tags
    are drawn last, over everything. A context classifier's
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
    size = (out.shape[1], out.shape[0])
    st = _Style(*size)
    drawn = [_face_drawing(face, size, st) for face in faces]
    for d in drawn:  # boxes first, so that no box line crosses a tag or a panel
        cv2.rectangle(out, d.box[:2], d.box[2:], d.colour, st.box_thick)
        if d.body is not None:
            cv2.rectangle(out, d.body[:2], d.body[2:], d.colour, 1)
    if prob_bars:  # panels only where they cover no other face and no tag
        placed: list[Rect] = []
        for i, d in enumerate(drawn):
            if not d.probs:
                continue
            names = (
                list(labels)
                if labels is not None and len(labels) == len(d.probs)
                else [str(k) for k in range(len(d.probs))]
            )
            probs = list(d.probs)
            if len(probs) > MAX_BARS:  # many labels (EMOTIC's 26): the most likely ones
                top = np.argsort(-np.asarray(probs, np.float64), kind="stable")[:MAX_BARS]
                probs, names = [probs[k] for k in top], [names[k] for k in top]
            avoid = [r for j, o in enumerate(drawn) if j != i for r in (o.box_rect, *o.tags)]
            avoid += [d.box_rect, *d.tags, *placed]  # nor its own face
            rect = _panel_rect(size, names, d.box, st, avoid)
            if rect is not None:
                _put_prob_bars(out, probs, names, rect, st)
                placed.append(rect)
    for d in drawn:  # tags last: always readable
        for text, rect in zip(d.texts, d.tags):
            _put_label(out, text, rect, d.colour, st)
    return out


@dataclass
class _FaceDrawing:
    """What :func:`annotate` draws for one face, placed before anything is drawn."""

    box: Rect  # x1, y1, x2, y2 of the face box (inclusive, as cv2.rectangle takes it)
    colour: tuple[int, int, int]
    texts: list[str]
    tags: list[Rect]
    body: Rect | None
    probs: Sequence[float] | None

    @property
    def box_rect(self) -> Rect:
        return self.box[0], self.box[1], self.box[2] + 1, self.box[3] + 1


def _face_drawing(face: Face, size: tuple[int, int], st: _Style) -> _FaceDrawing:
    x1, y1, x2, y2 = (int(round(float(v))) for v in face["bbox"])
    emotion = face.get("smoothed") or face.get("emotion")  # a track's smoothed label if any
    if emotion is not None:
        colour = label_colour(emotion.get("label"))
        text = f"{emotion['label']} {float(emotion['score']):.2f}"
    else:
        colour = FALLBACK_COLOUR
        text = f"face {float(face.get('score', 0.0)):.2f}"
    track_id = face.get("track_id")
    if track_id is not None:
        text += f" #{int(track_id)}"
    texts, tags = [text], [_label_rect(size, text, x1, y1, st)]
    own = face.get("emotion")
    vad = own.get("vad") if own else None  # not smoothed: the frame's own values
    if vad:
        tag = f"V{float(vad['valence']):.1f} A{float(vad['arousal']):.1f} D{float(vad['dominance']):.1f}"
        (_, th), base = cv2.getTextSize(tag, _FONT, st.font_scale, st.text_thick)
        texts.append(tag)
        tags.append(_label_rect(size, tag, x1, y2 + 3 * st.pad + th + base, st))  # just below the box
    body = None
    if face.get("body_bbox") is not None:
        bx1, by1, bx2, by2 = (int(round(float(v))) for v in face["body_bbox"])
        body = (bx1, by1, bx2, by2)
    return _FaceDrawing(
        (x1, y1, x2, y2), colour, texts, tags, body, None if emotion is None else emotion.get("probs")
    )
