"""End to end on real clips: MTCNN + the shipped FER model, annotated MP4 and JSONL events."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import clip_frames, read_events, run_cli, video_frames

VIDEOS = DATA / "videos"

pytestmark = pytest.mark.slow


@NEEDS_DATA
def test_video_yaml_on_single_face_clip(tmp_path: Path) -> None:
    clip = VIDEOS / "liveportrait_d3.mp4"
    out_mp4, out_jsonl = tmp_path / "annotated.mp4", tmp_path / "events.jsonl"
    proc = run_cli(
        "run",
        "configs/video.yaml",
        "--no-status",
        f"--set=source.uri={clip}",
        f"--set=sinks.0.path={out_mp4}",
        f"--set=sinks.1.path={out_jsonl}",
        "--set=sinks.2.endpoint=tcp://127.0.0.1:*",
    )
    assert proc.returncode == 0, proc.stderr
    n_in = clip_frames(clip)
    n_out, size = video_frames(out_mp4)
    assert n_out == n_in and size == (512, 512)
    events = read_events(out_jsonl)
    assert [e["seq"] for e in events] == list(range(n_in))
    with_face = [e for e in events if e["faces"]]
    assert len(with_face) >= 0.95 * n_in
    labels = with_face[0]["labels"]
    assert labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    for e in with_face:
        face = e["faces"][0]
        x1, y1, x2, y2 = face["bbox"]
        assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
        assert abs(sum(face["emotion"]["probs"].values()) - 1) < 0.01


@NEEDS_DATA
def test_crowd_clip_has_several_faces_per_frame(tmp_path: Path) -> None:
    out_jsonl = tmp_path / "events.jsonl"
    (tmp_path / "p.yaml").write_text(
        json.dumps(
            {
                "source": {"type": "video", "uri": str(VIDEOS / "facenet_video.mp4")},
                "detector": {"type": "mtcnn", "workers": 2},
                "classifier": {"type": "fer"},
                "sinks": [{"type": "jsonl", "path": str(out_jsonl)}],
            }
        )
    )
    proc = run_cli("run", str(tmp_path / "p.yaml"), "--no-status")
    assert proc.returncode == 0, proc.stderr
    events = read_events(out_jsonl)
    assert len(events) == clip_frames(VIDEOS / "facenet_video.mp4"), proc.stderr
    counts = sorted(len(e["faces"]) for e in events)
    assert counts[len(counts) // 2] >= 3  # median frame shows several faces


@NEEDS_DATA
def test_photo_folder_face_counts_match_reference(tmp_path: Path) -> None:
    photos = DATA / "photos"
    expected = [json.loads(line) for line in (photos / "faces.jsonl").read_text().splitlines()]
    out_jsonl = tmp_path / "events.jsonl"
    annotated = tmp_path / "annotated"
    proc = run_cli(
        "run",
        "configs/images.yaml",
        "--no-status",
        f"--set=source.uri={photos}",
        f"--set=sinks.0.path={out_jsonl}",
        f"--set=sinks.1.folder={annotated}",
        f"--set=sinks.2.path={tmp_path / 'a.mp4'}",
    )
    assert proc.returncode == 0, proc.stderr
    events = read_events(out_jsonl)
    assert [e["image_file"] for e in events] == sorted(r["file"] for r in expected)
    for ref in expected:
        (event,) = (e for e in events if e["image_file"] == ref["file"])
        assert abs(len(event["faces"]) - ref["faces_p95"]) <= 1, (ref, len(event["faces"]))
    # one annotated image per photo, same name and size, with the faces drawn on it
    assert sorted(p.name for p in annotated.iterdir()) == sorted(r["file"] for r in expected)
    for event in events:
        original, drawn = (cv2.imread(str(folder / event["image_file"])) for folder in (photos, annotated))
        assert drawn.shape == original.shape
        x1, y1, x2, y2 = (int(v) for v in event["faces"][0]["bbox"])
        assert np.abs(drawn[y1:y2, x1:x2].astype(int) - original[y1:y2, x1:x2]).max() > 100  # a box


@NEEDS_DATA
def test_two_streams_share_the_detector_and_classifier(tmp_path: Path) -> None:
    out_jsonl, out_mp4 = tmp_path / "events.jsonl", tmp_path / "annotated.mp4"
    clips = {"left": VIDEOS / "liveportrait_d3.mp4", "right": VIDEOS / "fer_woman2.mp4"}
    (tmp_path / "p.yaml").write_text(
        json.dumps(
            {
                "sources": [
                    {"type": "video", "uri": str(path), "stream": name, "max_frames": 40}
                    for name, path in clips.items()
                ],
                "detector": {"type": "mtcnn", "workers": 2, "max_side": 640},
                "classifier": {"type": "fer"},
                "tracking": {"detect_every": 4},
                "sinks": [{"type": "jsonl", "path": str(out_jsonl)}, {"type": "video", "path": str(out_mp4)}],
            }
        )
    )
    proc = run_cli("run", str(tmp_path / "p.yaml"), "--no-status")
    assert proc.returncode == 0, proc.stderr
    events = read_events(out_jsonl)
    for name in clips:
        mine = [e for e in events if e["stream"] == name]
        assert [e["seq"] for e in mine] == list(range(40))  # complete and in order per stream
        assert sum(bool(e["faces"]) for e in mine) >= 36
        assert len({f["track_id"] for e in mine[1:] for f in e["faces"]}) <= 2
    # one video file per stream, each with its own frame size
    assert video_frames(out_mp4)[0] == 40
    assert video_frames(tmp_path / "annotated.right.mp4")[0] == 40
