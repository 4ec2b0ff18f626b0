"""The mood of a frame: one label for all its faces, the same wherever it is shown.

The ``mqtt`` sink publishes it (``PREFIX/S/mood``) and ``vidaffect dashboard`` shows it, both
through :func:`mood_of`, so a subscriber and a person at the dashboard read the same mood.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def face_emotion(face: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A pipeline face's smoothed emotion (``face["smoothed"]``), else its per-frame one
    (``face["emotion"]``, pipelines without tracking), else None."""
    return face.get("smoothed") or face.get("emotion")


def mood_of(emotions: Iterable[Mapping[str, Any] | None], labels: Sequence[str] | None) -> dict[str, Any]:
    """The dominant emotion of a frame's faces.

    Args:
        emotions: one entry per face: ``{"label", "score", "probs"}`` (``probs`` optional:
            float probabilities in ``labels`` order), or None for a face without an emotion.
        labels: the classifier's labels (``frame.meta["labels"]``), or None.

    Returns:
        ``{"label", "score", "faces"}``: the label with the highest mean probability over the
        faces that have an emotion, that mean as ``score`` (rounded to 4 places), and the number
        of faces (with or without an emotion). A face without ``probs`` (or whose ``probs`` do
        not match ``labels``) counts its top-1 ``score`` for its ``label`` and 0 for the others.
        ``label`` and ``score`` are None when no face has an emotion.
    """
    totals: dict[str, float] = {}
    faces = scored = 0
    for emo in emotions:
        faces += 1
        if not emo:
            continue
        scored += 1
        probs = emo.get("probs")
        if probs is not None and labels is not None and len(probs) == len(labels):
            for lab, p in zip(labels, probs):
                totals[lab] = totals.get(lab, 0.0) + float(p)
        else:
            totals[str(emo["label"])] = totals.get(str(emo["label"]), 0.0) + float(emo["score"])
    if not totals:
        return {"label": None, "score": None, "faces": faces}
    label = max(totals, key=lambda k: totals[k])
    return {"label": label, "score": round(totals[label] / scored, 4), "faces": faces}
