"""`vidaffect demo`: the default pipeline on a real clip, with a summary of what it saw.

The clip is, in order: the path given; ``liveportrait_d3.mp4`` (or the first clip) in the
data folder's ``videos/`` (see :mod:`vidaffect.sample_data`); else a short clip made from a real
photograph that scikit-image ships (NASA's portrait of astronaut Eileen Collins), slowly
zoomed and panned, so the demo runs on a fresh machine with no camera and no network.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidaffect.cli.run_summary import emotion_summary, stage_table
from vidaffect.config import validate
from vidaffect.errors import SourceError
from vidaffect.events.timeline import read_timelines
from vidaffect.events.timeline_plot import write_timeline_files
from vidaffect.runtime.supervisor import raise_for_errors, run_pipeline
from vidaffect.sample_data import data_dir

PREFERRED_CLIP = "liveportrait_d3.mp4"
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm"}


def photo_clip(path: Path, seconds: float = 4.0, fps: int = 25, size: int = 384) -> Path:
    """Write a clip that zooms and pans over scikit-image's astronaut photo (RGB 512x512).

    Returns ``path`` (an MP4, ``mp4v``), ``seconds * fps`` frames of ``size`` x ``size`` BGR.
    """
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (size, size))
    if not writer.isOpened():
        raise SourceError(f"cannot write the demo clip {path}")
    n = int(seconds * fps)
    try:
        for i in range(n):
            t = i / max(n - 1, 1)
            zoom = 1.0 + 0.35 * np.sin(np.pi * t)
            side = 512 / zoom
            cx, cy = 256 + 30 * np.sin(2 * np.pi * t), 220 + 20 * np.cos(2 * np.pi * t)
            m = np.array(
                [
                    [size / side, 0, -(cx - side / 2) * size / side],
                    [0, size / side, -(cy - side / 2) * size / side],
                ],
                np.float32,
            )
            writer.write(cv2.warpAffine(photo, m, (size, size), borderMode=cv2.BORDER_REFLECT))
    finally:
        writer.release()
    return path


def pick_clip(video: Path | None, out: Path) -> Path:
    """The clip the demo runs on (see the module docstring).

    Raises:
        SourceError: ``video`` was given but does not exist.
    """
    if video is not None:
        if not video.is_file():
            raise SourceError(f"video not found: {video}")
        return video
    videos = data_dir() / "videos"
    if videos.is_dir():
        if (videos / PREFERRED_CLIP).is_file():
            return videos / PREFERRED_CLIP
        clips = sorted(p for p in videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if clips:
            return clips[0]
    return photo_clip(out / "astronaut.mp4")


def demo_pipeline(clip: Path, out: Path) -> dict[str, Any]:
    """The demo pipeline as a mapping: the detector, classifier and file sinks of
    configs/video.yaml, with detection on every frame (no tracking) and no ZeroMQ publisher."""
    return {
        "pipeline": {"name": "demo"},
        "source": {"type": "video", "uri": str(clip)},
        "detector": {"type": "mtcnn", "preset": "fast"},
        "classifier": {"type": "fer", "checkpoint": "default"},
        "sinks": [
            {"type": "video", "path": str(out / "annotated.mp4"), "prob_bars": True},
            {"type": "jsonl", "path": str(out / "events.jsonl")},
        ],
    }


def run_demo(video: Path | None, out: Path, status: bool = True) -> int:
    """Run the demo; print the stage table, per-emotion summary and throughput. Returns the exit code."""
    clip = pick_clip(video, out)
    print(f"demo: {clip}", file=sys.stderr)
    cfg = validate(demo_pipeline(clip, out), "<demo>")
    result = run_pipeline(cfg, show_status=status)
    print(stage_table(result.stages))
    raise_for_errors(result)
    timelines = read_timelines(out / "events.jsonl")
    table, stats = emotion_summary(out / "events.jsonl", timelines)
    frames = stats["frames"]
    print()
    print(table)
    print()
    print(
        f"{frames} frames, faces on {stats['frames_with_faces']} of them, {stats['faces']} faces; "
        f"{frames / max(result.wall_s, 1e-9):.1f} fps end to end ({result.wall_s:.1f} s)"
    )
    print(f"annotated video: {out / 'annotated.mp4'}")
    print(f"events:          {out / 'events.jsonl'}")
    for path in write_timeline_files(out / "events.jsonl", timelines=timelines):
        print(f"report:          {path}")
    return result.exit_code
