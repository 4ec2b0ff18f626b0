"""Results a person can read: per-stream tables of a run's events (``vidaffect report``).

From an events JSONL file (the ``jsonl`` sink's output, event schema v2-v4), per stream:

* ``<stem>.<stream>.timeline.csv``: one row per face and frame (with tracking: per track and
  frame): stream, frame ``seq``, ``time_s``, ``track_id``, the box, the frame's own label
  and score, the smoothed label and score, then the raw probabilities (``p_<label>``) and the
  smoothed ones (``s_<label>``);
* ``<stem>.<stream>.tracks.csv``: one row per track: first and last time, frames, label
  changes, the dominant smoothed label and its share of the track's frames, and the mean raw
  probability of each label;
* ``<stem>.<stream>.timeline.png``: see :mod:`vidaffect.events.timeline_plot`.

``time_s`` is the frame's position in a file (``pts_ms``), else seconds since the stream's
first frame by capture time (cameras, photos).
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class FaceRow:
    """One face of one frame."""

    seq: int
    time_s: float
    track_id: int | None
    face: int  # position among the frame's faces
    bbox: list[float]
    label: str | None
    score: float | None
    probs: dict[str, float]
    smoothed_label: str | None = None
    smoothed_score: float | None = None
    smoothed_probs: dict[str, float] = field(default_factory=dict)
    image_file: str | None = None


@dataclass
class StreamTimeline:
    """The faces of one stream's frame events, in order, and its label changes."""

    stream: str
    labels: list[str] = field(default_factory=list)
    frames: list[tuple[int, float]] = field(default_factory=list)  # (seq, time_s) of every frame
    rows: list[FaceRow] = field(default_factory=list)
    changes: Counter[int] = field(default_factory=Counter)  # track id -> label changes

    def tracks(self) -> dict[int, list[FaceRow]]:
        out: dict[int, list[FaceRow]] = defaultdict(list)
        for row in self.rows:
            if row.track_id is not None:
                out[row.track_id].append(row)
        return dict(out)


def read_timelines(events: str | Path) -> dict[str, StreamTimeline]:
    """Per stream id, the frames and faces of an events JSONL file.

    Lines that are not JSON objects of this schema are skipped (a file cut short by a kill
    may end in half a line).

    Raises:
        FileNotFoundError: ``events`` does not exist.
    """
    streams: dict[str, StreamTimeline] = {}
    first_ts: dict[str, int] = {}
    with open(events, encoding="utf-8") as f:
        for line in f:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict) or "stream" not in event:
                continue
            st = streams.setdefault(str(event["stream"]), StreamTimeline(str(event["stream"])))
            if event.get("type") == "change":
                if event.get("from") is not None and event.get("to") is not None:
                    st.changes[int(event["track_id"])] += 1
                continue
            if event.get("type") != "frame":
                continue
            t0 = first_ts.setdefault(st.stream, int(event["ts_capture_ns"]))
            pts = event.get("pts_ms")
            time_s = pts / 1000.0 if pts is not None else (int(event["ts_capture_ns"]) - t0) / 1e9
            if event.get("labels") and not st.labels:
                st.labels = list(event["labels"])
            st.frames.append((int(event["seq"]), time_s))
            for k, face in enumerate(event.get("faces", [])):
                emotion = face.get("emotion") or {}
                smoothed = face.get("smoothed") or {}
                st.rows.append(
                    FaceRow(
                        seq=int(event["seq"]),
                        time_s=time_s,
                        track_id=face.get("track_id"),
                        face=k,
                        bbox=list(face["bbox"]),
                        label=emotion.get("label"),
                        score=emotion.get("score"),
                        probs=dict(emotion.get("probs") or {}),
                        smoothed_label=smoothed.get("label"),
                        smoothed_score=smoothed.get("score"),
                        smoothed_probs=dict(smoothed.get("probs") or {}),
                        image_file=event.get("image_file"),
                    )
                )
    return streams


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"


def write_timeline_csv(st: StreamTimeline, path: Path) -> Path:
    """The per-face, per-frame CSV (see the module docstring)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "stream",
                "seq",
                "time_s",
                "image_file",
                "track_id",
                "face",
                "x1",
                "y1",
                "x2",
                "y2",
                "label",
                "score",
                "smoothed_label",
                "smoothed_score",
                *(f"p_{lab}" for lab in st.labels),
                *(f"s_{lab}" for lab in st.labels),
            ]
        )
        for r in st.rows:
            w.writerow(
                [
                    st.stream,
                    r.seq,
                    _fmt(r.time_s, 3),
                    r.image_file or "",
                    "" if r.track_id is None else r.track_id,
                    r.face,
                    *(_fmt(v, 1) for v in r.bbox),
                    r.label or "",
                    _fmt(r.score),
                    r.smoothed_label or "",
                    _fmt(r.smoothed_score),
                    *(_fmt(r.probs.get(lab)) for lab in st.labels),
                    *(_fmt(r.smoothed_probs.get(lab)) for lab in st.labels),
                ]
            )
    return path


def track_summary(st: StreamTimeline) -> list[dict[str, Any]]:
    """Per track (by first appearance): ``track_id``, ``first_s``, ``last_s``, ``frames``,
    ``label_changes``, ``dominant`` (the most frequent smoothed label, the raw one without
    smoothing), ``dominant_share`` (of the track's frames) and ``mean`` (label -> mean raw
    probability)."""
    out = []
    for tid, rows in st.tracks().items():
        labels = Counter(r.smoothed_label or r.label for r in rows if (r.smoothed_label or r.label))
        dominant, n = labels.most_common(1)[0] if labels else (None, 0)
        probs = np.array([[r.probs.get(lab, 0.0) for lab in st.labels] for r in rows], float)
        mean = probs.mean(0) if len(rows) and st.labels else np.zeros(len(st.labels))
        out.append(
            {
                "track_id": tid,
                "first_s": rows[0].time_s,
                "last_s": rows[-1].time_s,
                "frames": len(rows),
                "label_changes": st.changes.get(tid, 0),
                "dominant": dominant,
                "dominant_share": n / len(rows),
                "mean": dict(zip(st.labels, mean.tolist())),
            }
        )
    return out


def write_tracks_csv(st: StreamTimeline, path: Path) -> Path:
    """The per-track CSV (see :func:`track_summary`)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "stream",
                "track_id",
                "first_s",
                "last_s",
                "duration_s",
                "frames",
                "label_changes",
                "dominant",
                "dominant_share",
                *(f"mean_{lab}" for lab in st.labels),
            ]
        )
        for t in track_summary(st):
            w.writerow(
                [
                    st.stream,
                    t["track_id"],
                    _fmt(t["first_s"], 3),
                    _fmt(t["last_s"], 3),
                    _fmt(t["last_s"] - t["first_s"], 3),
                    t["frames"],
                    t["label_changes"],
                    t["dominant"] or "",
                    _fmt(t["dominant_share"], 3),
                    *(_fmt(t["mean"][lab]) for lab in st.labels),
                ]
            )
    return path
