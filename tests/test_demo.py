"""`vidaffect demo` on a fresh machine: no data folder, a clip made from a shipped photograph."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import read_events, run_cli, video_frames

from vidaffect.cli.demo import photo_clip


def test_photo_clip_is_a_real_video(tmp_path: Path) -> None:
    clip = photo_clip(tmp_path / "a.mp4", seconds=1.0, fps=10, size=128)
    assert video_frames(clip) == (10, (128, 128))


@pytest.mark.slow
def test_demo_without_data_folder(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", str(out), "--no-status", env={"VIDAFFECT_DATA": str(tmp_path / "none")})
    assert proc.returncode == 0, proc.stderr
    assert "astronaut.mp4" in proc.stderr
    n, _ = video_frames(out / "annotated.mp4")
    assert n == video_frames(out / "astronaut.mp4")[0] == 100
    events = read_events(out / "events.jsonl")
    assert len(events) == n
    assert sum(bool(e["faces"]) for e in events) >= 0.9 * n
    assert "emotion" in proc.stdout and "fps end to end" in proc.stdout


@pytest.mark.slow
def test_demo_missing_video_is_clear_error(tmp_path: Path) -> None:
    proc = run_cli("demo", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o"))
    assert proc.returncode != 0
    assert "video not found" in proc.stderr and "Traceback" not in proc.stderr
