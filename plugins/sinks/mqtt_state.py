"""What the ``mqtt`` sink publishes, worked out from frames without a broker: the retained state
topics of each stream and track, and when each has changed enough to be published again.

Topics under ``PREFIX`` (``vidaffect`` by default; payloads are UTF-8, JSON unless said):

==============================  ========  ==================================================
topic                           retained  payload
==============================  ========  ==================================================
``PREFIX/available``            yes       ``online``; ``offline`` (last will, clean stop)
``PREFIX/S/status``             yes       ``{"state": "online" | "reconnecting" | "ended",
                                          ...}`` with ``down_s``/``attempts`` or ``gap_s``
``PREFIX/S/faces``              yes       the number of faces in the latest frame (``3``)
``PREFIX/S/mood``               yes       ``{"label", "score", "faces", "ts_ns"}``: the
                                          dominant smoothed emotion of the visible faces
``PREFIX/S/tracks/ID``          yes       ``{"track_id", "label", "score", "probs", "since_ns",
                                          "ts_ns"}``; an empty retained message when it ends
``PREFIX/S/events``             no        ``change``, ``gap`` and ``outage`` events (the
                                          event schema, :mod:`vidaffect.events.build`)
``PREFIX/S/frames``             no        ``frame`` events, only when switched on, rate-capped
==============================  ========  ==================================================
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from vidaffect.events.mood import face_emotion, mood_of
from vidaffect.frames import Frame

SCORE_STEP = 0.05
"""A retained score is published again when it moved by at least this much (or its label changed)."""


def to_json(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


@dataclass
class _Retained:
    """The last payload published (or due) on one retained topic."""

    payload: bytes
    key: tuple[Any, ...]  # what decides whether it changed enough: label, count, score


@dataclass
class StreamState:
    """The retained topics of one stream, kept so that they can be published again after a
    reconnect, and the tracks still open."""

    topics: dict[str, _Retained] = field(default_factory=dict)
    tracks: dict[int, dict[str, Any]] = field(default_factory=dict)


def _changed(old: _Retained | None, key: tuple[Any, ...]) -> bool:
    if old is None or old.key[0] != key[0] or len(old.key) != len(key):
        return True
    for a, b in zip(old.key[1:], key[1:]):
        if isinstance(a, float) and isinstance(b, float):
            if abs(a - b) >= SCORE_STEP:
                return True
        elif a != b:
            return True
    return False


class MqttState:
    """Retained state of every stream, updated frame by frame.

    Each ``update_*`` method returns the ``(topic, payload)`` pairs to publish now (retained),
    those whose content changed enough since they were last published: a new label or face
    count at once, a score that moved by :data:`SCORE_STEP`. :meth:`retained` lists every
    current retained pair (to publish again after a reconnect).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self.streams: dict[str, StreamState] = {}

    def topic(self, stream: str, *parts: str) -> str:
        return "/".join((self.prefix, stream, *parts))

    def _set(self, stream: str, sub: str, payload: bytes, key: tuple[Any, ...]) -> list[tuple[str, bytes]]:
        st = self.streams.setdefault(stream, StreamState())
        old = st.topics.get(sub)
        if not _changed(old, key):
            if old is not None:
                old.payload = payload  # newest content kept for a republish; not sent now
            return []
        st.topics[sub] = _Retained(payload, key)
        return [(self.topic(stream, *sub.split("/")), payload)]

    def update_status(self, stream: str, state: str, **figures: Any) -> list[tuple[str, bytes]]:
        """``PREFIX/S/status``: ``online`` / ``reconnecting`` / ``ended`` plus figures."""
        payload = to_json({"state": state, **figures, "ts_ns": time.time_ns()})
        return self._set(stream, "status", payload, (state, *sorted(figures.items())))

    def update_frame(self, frame: Frame) -> list[tuple[str, bytes]]:
        """Faces, mood and track topics after ``frame``; a track that ended at this frame (a
        ``change`` to None) gets an empty retained payload, which deletes it on the broker."""
        out: list[tuple[str, bytes]] = []
        stream, faces = frame.stream, frame.meta.get("faces", [])
        labels = frame.meta.get("labels")
        out += self._set(stream, "faces", str(len(faces)).encode(), (len(faces),))
        mood = {**mood_of(map(face_emotion, faces), labels), "ts_ns": frame.ts_ns}
        key = (mood["label"], mood["faces"], float(mood["score"] or 0.0))
        out += self._set(stream, "mood", to_json(mood), key)
        st = self.streams[stream]
        for face in faces:
            tid, sm = face.get("track_id"), face.get("smoothed")
            if tid is None or not sm:
                continue
            probs = sm.get("probs")
            track = {
                "track_id": int(tid),
                "label": str(sm["label"]),
                "score": round(float(sm["score"]), 4),
                "probs": dict(zip(labels, [round(float(p), 4) for p in probs]))
                if probs is not None and labels is not None and len(labels) == len(probs)
                else None,
                "ts_ns": frame.ts_ns,
            }
            prev = st.tracks.get(int(tid))
            track["since_ns"] = prev["since_ns"] if prev and prev["label"] == track["label"] else frame.ts_ns
            st.tracks[int(tid)] = track
            out += self._set(stream, f"tracks/{int(tid)}", to_json(track), (track["label"], track["score"]))
        for change in frame.meta.get("changes", ()):
            if change.get("to") is None:
                out += self.end_track(stream, int(change["track_id"]))
        return out

    def end_track(self, stream: str, track_id: int) -> list[tuple[str, bytes]]:
        """The empty retained payload that clears a track that ended."""
        st = self.streams.setdefault(stream, StreamState())
        st.tracks.pop(track_id, None)
        if st.topics.pop(f"tracks/{track_id}", None) is None:
            return []
        return [(self.topic(stream, "tracks", str(track_id)), b"")]

    def end_stream(self, stream: str, frames: int) -> list[tuple[str, bytes]]:
        """At the stream's end: every open track cleared, no faces, no mood, status ``ended``."""
        st = self.streams.setdefault(stream, StreamState())
        out: list[tuple[str, bytes]] = []
        for tid in list(st.tracks):
            out += self.end_track(stream, tid)
        for sub in [s for s in st.topics if s.startswith("tracks/")]:
            out += self.end_track(stream, int(sub.split("/")[1]))
        ts = time.time_ns()
        out += self._set(stream, "faces", b"0", (0,))
        out += self._set(
            stream, "mood", to_json({"label": None, "score": None, "faces": 0, "ts_ns": ts}), (None, 0, 0.0)
        )
        out += self.update_status(stream, "ended", frames=frames)
        return out

    def retained(self) -> list[tuple[str, bytes]]:
        """Every current retained topic and payload (after a reconnect: publish them all)."""
        return [
            (self.topic(stream, *sub.split("/")), r.payload)
            for stream, st in self.streams.items()
            for sub, r in st.topics.items()
        ]
