"""The frame mood: one definition for the ``mqtt`` sink and the dashboard."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vidaffect.events.mood import face_emotion, mood_of
from vidaffect.frames import Frame
from vidaffect_plugins.sinks.preview import faces_message

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def emotion(label: str, score: float) -> dict[str, Any]:
    probs = [(1 - score) / 6] * 7
    probs[LABELS.index(label)] = score
    return {"label": label, "score": score, "probs": probs}


def face(per_frame: dict[str, Any] | None, smoothed: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"bbox": [10.0, 10.0, 40.0, 40.0], "score": 0.99, "track_id": 1}
    if per_frame:
        out["emotion"] = per_frame
    if smoothed:
        out["smoothed"] = smoothed
    return out


def test_the_mood_is_the_label_with_the_highest_mean_probability() -> None:
    faces = [face(emotion("happy", 0.6)), face(emotion("sad", 0.9)), face(emotion("happy", 0.7)), face(None)]
    got = mood_of(map(face_emotion, faces), LABELS)
    # sad is the most probable single face, and happy the top-1 of two; the mean decides
    assert got["label"] == "happy" and got["faces"] == 4  # a face without an emotion counts as a face
    assert got["score"] == pytest.approx((0.6 + 0.1 / 6 + 0.7) / 3, abs=1e-4)
    assert mood_of([], LABELS) == {"label": None, "score": None, "faces": 0}


def test_the_smoothed_emotion_wins_over_the_per_frame_one() -> None:
    faces = [face(emotion("sad", 0.9), smoothed=emotion("happy", 0.55))]
    assert mood_of(map(face_emotion, faces), LABELS)["label"] == "happy"


def test_without_probs_a_face_counts_its_top1_score() -> None:
    faces = [face({"label": "fear", "score": 0.5}), face({"label": "happy", "score": 0.4})]
    assert mood_of(map(face_emotion, faces), LABELS) == {"label": "fear", "score": 0.25, "faces": 2}


def test_the_dashboard_shows_the_mood_the_mqtt_sink_publishes() -> None:
    """Where most faces' top-1 is one label but the mean probability favours another, both
    read the mean: the preview sink sends the dashboard the mood with the faces."""
    faces = [
        face(emotion("neutral", 0.4), smoothed=emotion("neutral", 0.36)),
        face(emotion("neutral", 0.4), smoothed=emotion("neutral", 0.37)),
        face(emotion("sad", 0.95), smoothed=emotion("sad", 0.96)),
    ]
    published = mood_of(map(face_emotion, faces), LABELS)
    frame = Frame(np.zeros((120, 160, 3), np.uint8), "lobby", 0, 0, None, {"faces": faces, "labels": LABELS})
    shown = faces_message(frame, (160, 120))["mood"]
    assert published["label"] == shown["label"] == "sad"
    assert shown["score"] == pytest.approx(published["score"], abs=2e-3) and shown["faces"] == 3
