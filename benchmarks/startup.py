"""Start-up of ``vidaffect run``: stage processes spawned afresh against forked from a fork
server that has imported the libraries once (the default), idle and on a busy machine.

    python -m benchmarks.startup [VIDEO] [--frames 10] [--rounds 5] [--load 0 2]

Each round runs ``vidaffect run configs/video.yaml`` (MTCNN, the default FER model, tracking,
video + JSONL + ZeroMQ sinks: six stage processes) on the first ``--frames`` frames of VIDEO,
once per start method, in alternating order, as a user would from a shell. ``--load N`` keeps
N busy-looping processes running meanwhile (a machine already at work). Printed per load and
method: the median start-up (from the command's own "start-up" figure: from the pipeline's
start to every stage ready, models loaded) and the median wall time of the whole command
(interpreter start, reading the file, start-up, the frames, shutdown), and the ratio of the
medians to ``spawn`` measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_table
from vidaffect.sample_data import data_dir

REPO = Path(__file__).resolve().parent.parent
METHODS = ("spawn", "forkserver")


def _busy() -> None:
    while True:
        pass


def run_once(video: Path, frames: int, method: str, out: Path) -> tuple[float, float]:
    """``(start-up s, wall s)`` of one ``vidaffect run`` with stage start ``method``."""
    cmd = [
        sys.executable,
        "-m",
        "vidaffect",
        "run",
        str(REPO / "configs" / "video.yaml"),
        f"--set=source.uri={video}",
        f"--set=source.max_frames={frames}",
        f"--set=sinks.0.path={out / 'a.mp4'}",
        f"--set=sinks.1.path={out / 'e.jsonl'}",
        "--set=sinks.2.endpoint=tcp://127.0.0.1:*",
        "--no-status",
        "--no-report",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "VIDAFFECT_START_METHOD": method},
    )
    wall = time.perf_counter() - t0
    found = re.search(r"start-up ([0-9.]+) s", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"vidaffect run failed ({method}):\n{proc.stderr[-2000:]}")
    return float(found.group(1)), wall


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.startup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", nargs="?", default=str(data_dir() / "videos" / "liveportrait_d3.mp4"))
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--load", type=int, nargs="+", default=[0, 2], help="busy processes during the runs")
    args = p.parse_args(argv)
    video = Path(args.video)
    if not video.is_file():
        p.error(f"video not found: {video}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for load in args.load:
            hogs = [mp.get_context("spawn").Process(target=_busy, daemon=True) for _ in range(load)]
            for hog in hogs:
                hog.start()
            try:
                times: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
                for r in range(args.rounds):
                    for method in METHODS if r % 2 == 0 else reversed(METHODS):
                        times[method].append(run_once(video, args.frames, method, Path(tmp)))
            finally:
                for hog in hogs:
                    hog.kill()
            base = {k: statistics.median(t[k] for t in times["spawn"]) for k in (0, 1)}
            for method in METHODS:
                start = statistics.median(t[0] for t in times[method])
                wall = statistics.median(t[1] for t in times[method])
                rows.append(
                    [
                        load,
                        method,
                        f"{start:.2f}",
                        f"{start / base[0]:.2f}",
                        f"{wall:.2f}",
                        f"{wall / base[1]:.2f}",
                    ]
                )
    print_table(
        f"vidaffect run start-up, {args.frames} frames of {video.name}, median of {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs",
        ["busy processes", "stage start", "start-up s", "vs spawn", "whole command s", "vs spawn"],
        rows,
    )


if __name__ == "__main__":
    main()
