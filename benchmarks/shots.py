"""Shot-change detection for tracking: PySceneDetect's ContentDetector (what the tracker
uses, :mod:`vidaffect.analytics.shots`) against a plain frame difference, on real clips.

    python -m benchmarks.shots [VIDEOS_DIR] [--frames 120]

Single-shot clips: every clip of the folder (up to ``--frames`` frames each); any cut found
there is a false cut (a clip may hold a real cut: see the table). Joined clips: each pair of
consecutive clips, ``--frames / 2`` frames of each, resized to 512x512 and joined, so exactly
one hard cut at the join. Printed per method: cuts found at the joins (within 2 frames),
false cuts on the joined clips, cuts on the single clips by clip, and milliseconds per frame
(the cut test only, including the downscale, median of the clips).

The frame difference is the mean absolute difference of consecutive 64x36 grayscale
thumbnails, a cut when above 30 (of 255) and at least 15 frames after the last one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import print_table
from vidaffect.analytics.shots import ShotCutDetector
from vidaffect.sample_data import data_dir

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv"}


class FrameDifference:
    """The baseline: mean absolute difference of 64x36 gray thumbnails above ``threshold``."""

    def __init__(self, threshold: float = 30.0, min_scene_frames: int = 15) -> None:
        self.threshold, self.min_gap = threshold, min_scene_frames
        self.prev: np.ndarray | None = None
        self.since = 0

    def is_cut(self, img: np.ndarray) -> bool:
        thumb = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (64, 36), interpolation=cv2.INTER_AREA)
        cut = (
            self.prev is not None
            and self.since >= self.min_gap
            and float(np.mean(cv2.absdiff(thumb, self.prev))) > self.threshold
        )
        self.prev, self.since = thumb, 0 if cut else self.since + 1
        return cut


METHODS: dict[str, Callable[[float], object]] = {
    "PySceneDetect ContentDetector (threshold 27)": lambda fps: ShotCutDetector(27.0, fps),
    "frame difference (64x36 gray, 30)": lambda fps: FrameDifference(),
}


def read(path: Path, limit: int, size: tuple[int, int] | None = None) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA) if size else img)
    return frames, fps


def cuts_of(make: Callable[[float], object], frames: list[np.ndarray], fps: float) -> tuple[list[int], float]:
    """Frame indices found as cuts and milliseconds per frame."""
    detector = make(fps)
    found = []
    t0 = time.perf_counter()
    for i, img in enumerate(frames):
        if detector.is_cut(img):  # type: ignore[attr-defined]
            found.append(i)
    return found, (time.perf_counter() - t0) * 1000 / max(len(frames), 1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.shots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("videos", nargs="?", default=str(data_dir() / "videos"))
    p.add_argument("--frames", type=int, default=120)
    args = p.parse_args(argv)
    clips = sorted(c for c in Path(args.videos).iterdir() if c.suffix.lower() in VIDEO_SUFFIXES)
    if len(clips) < 2:
        p.error(f"need at least two clips in {args.videos}")
    singles = {c.name: read(c, args.frames) for c in clips}
    half = args.frames // 2
    joined = []
    for a, b in zip(clips, clips[1:]):
        fa, fps = read(a, half, (512, 512))
        fb, _ = read(b, half, (512, 512))
        joined.append((f"{a.stem}+{b.stem}", fa + fb, fps, len(fa)))
    rows = []
    for name, make in METHODS.items():
        hits = false = 0
        ms = []
        for _, frames, fps, at in joined:
            found, cost = cuts_of(make, frames, fps)
            hits += any(abs(f - at) <= 2 for f in found)
            false += sum(abs(f - at) > 2 for f in found)
            ms.append(cost)
        per_clip = []
        for clip, (frames, fps) in singles.items():
            found, cost = cuts_of(make, frames, fps)
            ms.append(cost)
            if found:
                per_clip.append(f"{clip} {found}")
        rows.append(
            [
                name,
                f"{hits} of {len(joined)}",
                false,
                "; ".join(per_clip) or "none",
                f"{statistics.median(ms):.2f}",
            ]
        )
    print_table(
        f"Shot cuts: {len(joined)} joined clips (one cut each), {len(singles)} single clips, "
        f"up to {args.frames} frames",
        ["method", "cuts found at the joins", "false cuts (joined)", "cuts in single clips", "ms per frame"],
        rows,
    )


if __name__ == "__main__":
    main()
