"""JSON events: what the ``jsonl`` and ``zmq_events`` sinks emit.

One ``frame`` event per frame, with tracking one ``change`` event each time a track's
smoothed label changes or the track ends, and a ``gap`` event when a live stream resumes
after a break; all are validated by the JSON Schema at
:data:`EVENT_SCHEMA_PATH` (draft 2020-12, ``$id`` :data:`EVENT_SCHEMA_ID`)::

    {"schema": "vidaffect.event", "version": 5, "type": "frame",
     "stream": "cam0", "seq": 41, "ts_capture_ns": 1718000000000000000,
     "ts_event_ns": 1718000000030000000, "pts_ms": 1640.0, "frame_size": [1280, 720],
     "labels": ["angry", ..., "neutral"],
     "faces": [{"bbox": [x1, y1, x2, y2], "score": 0.99, "landmarks": [[x, y], ...],
                "track_id": 3, "emotion": {"label": "happy", "score": 0.87,
                                           "probs": {"angry": 0.01, ...}},
                "smoothed": {"label": "happy", "score": 0.74, "probs": {...}}}]}

With the ``emotic`` classifier, ``labels`` are EMOTIC's 26 categories, ``probs`` are
independent per-category probabilities, and each face also has ``body_bbox`` and, in
``emotion``, ``categories`` (those judged present) and ``vad``::

    "emotion": {"label": "Engagement", "score": 0.91, "probs": {"Affection": 0.05, ...},
                "categories": ["Engagement", "Happiness"],
                "vad": {"valence": 6.8, "arousal": 5.9, "dominance": 6.4}}

    {"schema": "vidaffect.event", "version": 5, "type": "change", "stream": "cam0",
     "seq": 57, "ts_capture_ns": ..., "ts_event_ns": ..., "pts_ms": 2280.0,
     "track_id": 3, "from": "neutral", "to": "happy", "score": 0.52}

    {"schema": "vidaffect.event", "version": 5, "type": "gap", "stream": "door", "seq": 812,
     "ts_capture_ns": ..., "ts_event_ns": ..., "pts_ms": null, "gap_s": 4.7, "attempts": 3,
     "reconnects": 1}

Coordinates are pixels of the full frame (xyxy, origin top-left); timestamps are integer
nanoseconds since the Unix epoch (``time.time_ns()``). Unlike the pipeline's face dicts,
whose ``probs`` is a list in the order of ``frame.meta["labels"]``, the event's ``probs``
maps label -> probability, so a consumer needs no side channel for the label order.

Frames of an ``images`` source also carry ``"image_file": "group_03.jpg"`` (after
``frame_size``): the photo's file name within the folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from vidaffect.frames import Emotion, Face, Frame

EVENT_SCHEMA_NAME = "vidaffect.event"
EVENT_VERSION = 5
EVENT_SCHEMA_ID = "https://vidaffect.dev/schemas/event.v5.json"
EVENT_SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "event.v5.json"

_PROB_DIGITS = 4


def load_event_schema() -> dict[str, Any]:
    """The event JSON Schema (a fresh dict on every call, safe to modify).

    Raises:
        OSError: the schema file is missing (a broken installation).
    """
    return json.loads(EVENT_SCHEMA_PATH.read_text(encoding="utf-8"))


def _num(value: Any, digits: int) -> float:
    return round(float(value), digits)


def _emotion_event(emotion: Emotion, labels: list[str] | None) -> dict[str, Any]:
    probs = list(emotion.get("probs") or [])
    if probs and (labels is None or len(labels) != len(probs)):
        n_labels = "no labels" if labels is None else f"{len(labels)} labels"
        raise ValueError(f"emotion probs has {len(probs)} values but frame.meta['labels'] has {n_labels}")
    out = dict(emotion)  # keeps extra keys a classifier may add (the schema allows them)
    out["label"] = str(emotion["label"])
    out["score"] = _num(emotion["score"], _PROB_DIGITS)
    out["probs"] = {str(lab): _num(p, _PROB_DIGITS) for lab, p in zip(labels or [], probs)}
    return out


def face_event(face: Face, labels: list[str] | None) -> dict[str, Any]:
    """A face of ``frame.meta["faces"]`` as the event schema's face object (rounded numbers,
    ``probs`` keyed by ``labels``, the classifier's labels in order).

    Raises:
        ValueError: the emotion's probabilities do not match ``labels``.
    """
    out: dict[str, Any] = {
        "bbox": [_num(v, 2) for v in face["bbox"]],
        "score": _num(face["score"], _PROB_DIGITS),
    }
    if face.get("landmarks") is not None:
        out["landmarks"] = [[_num(x, 2), _num(y, 2)] for x, y in face["landmarks"]]
    track_id = face.get("track_id")
    out["track_id"] = None if track_id is None else int(track_id)
    if face.get("tracked") is not None:
        out["tracked"] = bool(face["tracked"])
    if face.get("body_bbox") is not None:
        out["body_bbox"] = [_num(v, 2) for v in face["body_bbox"]]
    emotion = face.get("emotion")
    out["emotion"] = None if emotion is None else _emotion_event(emotion, labels)
    smoothed = face.get("smoothed")
    if smoothed is not None:
        out["smoothed"] = _emotion_event(smoothed, labels)
    return out


def _envelope(
    kind: str, stream: str, seq: int, ts_capture_ns: int, pts_ms: float | None, now_ns: int | None
) -> dict[str, Any]:
    """The keys every event type starts with."""
    return {
        "schema": EVENT_SCHEMA_NAME,
        "version": EVENT_VERSION,
        "type": kind,
        "stream": str(stream),
        "seq": int(seq),
        "ts_capture_ns": int(ts_capture_ns),
        "ts_event_ns": time.time_ns() if now_ns is None else int(now_ns),
        "pts_ms": None if pts_ms is None else float(pts_ms),
    }


def build_change_event(
    stream: str,
    seq: int,
    change: dict[str, Any],
    ts_capture_ns: int,
    pts_ms: float | None = None,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """The ``"change"`` event of one entry of ``frame.meta["changes"]``
    (see :class:`vidaffect.analytics.smoothing.Smoother`).

    Args:
        stream, seq: the stream and the frame where the change happened.
        change: ``{"track_id", "from", "to", "score"}``.
        ts_capture_ns, pts_ms: the frame's capture time and position.
        now_ns: ``ts_event_ns``; default ``time.time_ns()``.
    """
    score = change.get("score")
    return {
        **_envelope("change", stream, seq, ts_capture_ns, pts_ms, now_ns),
        "track_id": int(change["track_id"]),
        "from": change.get("from"),
        "to": change.get("to"),
        "score": None if score is None else _num(score, _PROB_DIGITS),
    }


def build_gap_event(frame: Frame, now_ns: int | None = None) -> dict[str, Any]:
    """The ``"gap"`` event of the first frame after a live source reconnected
    (``frame.meta["gap"]``: ``gap_s`` seconds without frames, ``attempts``, ``reconnects``)."""
    gap = frame.meta["gap"]
    return {
        **_envelope("gap", frame.stream, frame.seq, frame.ts_ns, frame.pts_ms, now_ns),
        "gap_s": float(gap.get("gap_s", 0.0)),
        "attempts": int(gap.get("attempts", 0)),
        "reconnects": int(gap.get("reconnects", 0)),
    }


def build_outage_event(stream: str, info: dict[str, Any], now_ns: int | None = None) -> dict[str, Any]:
    """The ``"outage"`` event of a live stream that is down (see :meth:`vidaffect.api.Sink.outage`):
    ``seq`` = frames the stream sent before (the next frame's number), ``ts_capture_ns`` = the
    capture time of its last frame (0 if none), ``down_s`` = seconds since the break,
    ``attempts`` = reconnect attempts so far."""
    return {
        **_envelope(
            "outage", stream, int(info.get("frames", 0)), int(info.get("last_ts_ns", 0)), None, now_ns
        ),
        "down_s": float(info.get("down_s", 0.0)),
        "attempts": int(info.get("attempts", 0)),
    }


def frame_side_events(frame: Frame) -> list[dict[str, Any]]:
    """Events besides the ``frame`` event: a ``"gap"`` (the stream resumed after a break),
    then the ``"change"`` events of ``meta["changes"]``, in order."""
    out = [build_gap_event(frame)] if isinstance(frame.meta.get("gap"), dict) else []
    return out + [
        build_change_event(frame.stream, frame.seq, c, frame.ts_ns, frame.pts_ms)
        for c in frame.meta.get("changes", ())
    ]


def stream_end_change_events(stream: str, info: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``"change"`` events ending the tracks still open at a stream's end (EOS ``info``).

    Each has ``seq`` = ``info["frames"]`` (one past the stream's last frame), ``ts_capture_ns``
    and ``ts_event_ns`` = the time of this call (there is no capture) and ``pts_ms`` None.
    """
    seq = int(info.get("frames", 0) or 0)
    return [build_change_event(stream, seq, c, time.time_ns()) for c in info.get("changes", ())]


def build_frame_event(frame: Frame, now_ns: int | None = None) -> dict[str, Any]:
    """The JSON-able ``"frame"`` event of ``frame`` (see the module docstring).

    Args:
        frame: a frame whose ``meta`` may hold ``faces`` and ``labels``.
        now_ns: ``ts_event_ns`` to use; default ``time.time_ns()`` at the call.

    Returns:
        A dict of plain Python values (str, int, float, None, list, dict).

    Raises:
        ValueError: a face's ``emotion.probs`` does not match ``frame.meta["labels"]``
            in length (or there are no labels), so probabilities cannot be named.
        KeyError: a face dict lacks ``bbox`` or ``score``, or an emotion lacks
            ``label`` or ``score``.
    """
    meta = frame.meta
    labels = meta.get("labels")
    labels = None if labels is None else [str(lab) for lab in labels]
    width, height = frame.size
    event: dict[str, Any] = {
        **_envelope("frame", frame.stream, frame.seq, frame.ts_ns, frame.pts_ms, now_ns),
        "frame_size": [width, height],
    }
    if meta.get("image_file"):
        event["image_file"] = str(meta["image_file"])
    event["labels"] = labels
    event["faces"] = [face_event(face, labels) for face in meta.get("faces", [])]
    return event


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of ``event`` (no spaces, no trailing newline).

    Raises:
        ValueError: the event holds NaN or infinity (not valid JSON).
        TypeError: the event holds a value JSON cannot represent.
    """
    try:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"event of stream {event.get('stream')!r} seq {event.get('seq')}: {err}") from None
    return text.encode("utf-8")
