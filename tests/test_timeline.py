"""Per-stream tables and plots of a run's events: the CSV timeline, the track summary, the
PNG timeline, from `vidaffect run` and `vidaffect report`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import read_events, run_cli, write_config

from vidaffect.events.timeline import read_timelines, track_summary
from vidaffect.events.timeline_plot import write_timeline_files

LABELS = ["angry", "happy", "neutral"]


def face(track: int | None, label: str, smoothed: str | None = None) -> dict:
    probs = {lab: (0.8 if lab == label else 0.1) for lab in LABELS}
    out = {
        "bbox": [10.0, 20.0, 50.0, 70.0],
        "score": 0.99,
        "track_id": track,
        "emotion": {"label": label, "score": 0.8, "probs": probs},
    }
    if smoothed:
        out["smoothed"] = {"label": smoothed, "score": 0.6, "probs": {lab: 0.2 for lab in LABELS}}
    return out


def frame_event(stream: str, seq: int, faces: list[dict], pts_ms: float | None = None) -> dict:
    return {
        "schema": "vidaffect.event",
        "version": 4,
        "type": "frame",
        "stream": stream,
        "seq": seq,
        "ts_capture_ns": 1_000_000_000_000 + seq * 500_000_000,
        "ts_event_ns": 0,
        "pts_ms": pts_ms,
        "frame_size": [100, 100],
        "labels": LABELS,
        "faces": faces,
    }


def change(stream: str, seq: int, track: int, old: str | None, new: str | None) -> dict:
    return {
        "schema": "vidaffect.event",
        "version": 4,
        "type": "change",
        "stream": stream,
        "seq": seq,
        "track_id": track,
        "from": old,
        "to": new,
        "score": 0.6,
    }


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """Stream cam0 (a file: pts): track 0 angry then happy, track 1 for two frames, a frame
    without faces; stream cam1 (a camera: capture times) with an untracked face; a last line
    cut in half, as a killed writer leaves it."""
    lines = [
        frame_event("cam0", 0, [face(0, "angry", "angry"), face(1, "neutral", "neutral")], 0.0),
        change("cam0", 0, 0, None, "angry"),
        frame_event("cam0", 1, [face(0, "angry", "angry"), face(1, "happy", "neutral")], 40.0),
        frame_event("cam0", 2, [face(0, "happy", "happy")], 80.0),
        change("cam0", 2, 0, "angry", "happy"),
        change("cam0", 2, 1, "neutral", None),
        frame_event("cam0", 3, [], 120.0),
        frame_event("cam0", 4, [face(0, "happy", "happy")], 160.0),
        frame_event("cam0", 5, [face(0, "happy", "happy")], 200.0),
        frame_event("cam1", 0, [face(None, "neutral")]),
        frame_event("cam1", 1, [face(None, "happy")]),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"type": "frame", "stre')
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_one_row_per_face_and_frame_with_times_and_probabilities(events: Path, tmp_path: Path) -> None:
    files = write_timeline_files(events, tmp_path / "out")
    assert [p.name for p in files] == [
        f"events.{s}.{kind}"
        for s in ("cam0", "cam1")
        for kind in ("timeline.csv", "tracks.csv", "timeline.png")
    ]
    rows = read_csv(tmp_path / "out" / "events.cam0.timeline.csv")
    assert [(r["seq"], r["track_id"], r["label"], r["smoothed_label"]) for r in rows] == [
        ("0", "0", "angry", "angry"),
        ("0", "1", "neutral", "neutral"),
        ("1", "0", "angry", "angry"),
        ("1", "1", "happy", "neutral"),
        ("2", "0", "happy", "happy"),
        ("4", "0", "happy", "happy"),
        ("5", "0", "happy", "happy"),
    ]
    assert [r["time_s"] for r in rows][-2:] == ["0.16", "0.2"]  # pts_ms / 1000
    assert rows[0]["p_angry"] == "0.8" and rows[0]["s_angry"] == "0.2" and rows[0]["x2"] == "50"
    cam1 = read_csv(tmp_path / "out" / "events.cam1.timeline.csv")
    assert [(r["time_s"], r["track_id"]) for r in cam1] == [("0", ""), ("0.5", "")]  # capture times


def test_track_summary_dominant_label_changes_and_means(events: Path) -> None:
    st = read_timelines(events)["cam0"]
    tracks = {t["track_id"]: t for t in track_summary(st)}
    assert tracks[0]["frames"] == 5 and (tracks[0]["first_s"], tracks[0]["last_s"]) == (0.0, 0.2)
    assert (tracks[0]["dominant"], tracks[0]["dominant_share"]) == ("happy", 0.6)
    assert tracks[0]["label_changes"] == 1  # angry -> happy; the first label is not a change
    assert (tracks[1]["dominant"], tracks[1]["label_changes"]) == ("neutral", 0)
    assert tracks[1]["mean"] == pytest.approx({"angry": 0.1, "happy": 0.45, "neutral": 0.45})
    assert track_summary(read_timelines(events)["cam1"]) == []  # untracked faces


def test_the_png_is_an_image_with_a_band_per_track(events: Path, tmp_path: Path) -> None:
    write_timeline_files(events, tmp_path)
    tracked = cv2.imread(str(tmp_path / "events.cam0.timeline.png"))
    untracked = cv2.imread(str(tmp_path / "events.cam1.timeline.png"))
    assert tracked is not None and untracked is not None
    assert tracked.shape[0] > untracked.shape[0]  # the track panel on top


@pytest.mark.slow
def test_report_command_prints_the_summary(events: Path, tmp_path: Path) -> None:
    proc = run_cli("report", str(events), "--out", str(tmp_path / "r"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "9 faces in 8 frames" in proc.stderr and "happy" in proc.stderr
    assert (tmp_path / "r" / "events.cam0.tracks.csv").is_file()
    proc = run_cli("report", str(tmp_path / "none.jsonl"), timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.slow
@NEEDS_DATA
def test_a_run_writes_the_report_of_its_events(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(DATA / "videos" / "facenet_video.mp4"), "max_frames": 20},
            "detector": {"type": "mtcnn", "preset": "accurate"},
            "classifier": {"type": "fer"},
            "tracking": {"detect_every": 3},
            "sinks": [{"type": "jsonl", "path": str(out)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status")
    assert proc.returncode == 0, proc.stderr
    frames = read_events(out)
    rows = read_csv(tmp_path / "events.cam0.timeline.csv")
    assert len(rows) == sum(len(e["faces"]) for e in frames) > 20  # a crowd: several per frame
    tracks = read_csv(tmp_path / "events.cam0.tracks.csv")
    assert len(tracks) >= 3 and sum(int(t["frames"]) for t in tracks) == len(rows)
    assert "emotion  faces  share" in proc.stderr
    assert (tmp_path / "events.cam0.timeline.png").stat().st_size > 10_000
