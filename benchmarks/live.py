"""Live mode: sources paced like cameras, latency and drops, with 1, 2 and 4 streams.

    python -m benchmarks.live VIDEO [--streams 1 2 4] [--seconds 20] [--detect-every 5]

Each source reads VIDEO in ``live`` mode: frames are released at the clip's own frame rate
(a simulated camera, looping) into a one-slot buffer, so when the pipeline is busy the
oldest frame is dropped and counted, and latency cannot build up. With N streams, N such
sources feed one shared detector and classifier. Printed per run and stream: frames
captured, dropped at the source, delivered as events, delivered fps, and capture -> event
latency p50/p95/p99 (from the events' own timestamps), plus CPU use and peak memory.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import cv2

from benchmarks.common import paced_sources, print_table, read_jsonl, run_config, stream_stats


def live_run(video: Path, streams: int, seconds: float, detect_every: int, out: Path) -> list[list[Any]]:
    """Run ``streams`` paced copies of ``video`` for ``seconds``; one table row per stream."""
    events_path = out / f"live-{streams}.jsonl"
    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 30.0
    frames = int(seconds * fps)
    data: dict[str, Any] = {
        "pipeline": {"name": f"live-{streams}", "status": False},
        "sources": paced_sources(video, streams, frames),
        "detector": {"type": "mtcnn", "preset": "fast"},
        "classifier": {"type": "fer"},
        "sinks": [{"type": "jsonl", "path": str(events_path), "flush_every": 100}],
    }
    if detect_every > 0:
        data["tracking"] = {"detect_every": detect_every}
    result, res = run_config(data, f"live, {streams} streams")
    events = read_jsonl(events_path)
    rows = []
    for i in range(streams):
        st = stream_stats(events, result.stages, f"cam{i}", streams)
        rows.append(
            [
                streams,
                f"cam{i}",
                *(st[k] for k in ("captured", "dropped", "events", "rate", "p50", "p95", "p99")),
                res.cpu_percent if i == 0 else None,
                res.peak_pss_mb if i == 0 else None,
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--seconds", type=float, default=20.0, help="capture time per stream")
    ap.add_argument("--detect-every", type=int, default=5, help="tracking: detect every N frames (0: off)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.video.is_file():
        raise SystemExit(f"{args.video}: no such video")
    out = args.out or Path(tempfile.mkdtemp(prefix="vidaffect-live-"))
    out.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(args.video))
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    rows: list[list[Any]] = []
    for n in args.streams:
        rows += live_run(args.video, n, args.seconds, args.detect_every, out)
    print_table(
        f"live mode: {args.video.name} ({size}) paced at {fps:.0f} fps per stream, {args.seconds:.0f} s, "
        f"detect every {args.detect_every or 1}",
        [
            "streams",
            "stream",
            "captured",
            "dropped",
            "events",
            "events/s",
            "lat p50 ms",
            "lat p95 ms",
            "lat p99 ms",
            "CPU %",
            "peak PSS MiB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
