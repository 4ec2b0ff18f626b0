"""Shared pieces of the benchmarks: resource sampling, percentiles, tables, pipelines."""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil

from vidaffect.config import validate
from vidaffect.errors import SourceError
from vidaffect.imaging.boxes import iou
from vidaffect.runtime.supervisor import RunResult, run_pipeline
from vidaffect_trainers.options import parse_arch_options


class ResourceSampler:
    """Samples the memory of this process and all its descendants every ``every_s`` seconds.

    Memory is PSS (proportional set size: private pages plus each shared page divided by
    the processes sharing it), so libraries mapped by several stage processes (torch,
    OpenCV) count once, as they cost once.

    CPU time comes from ``getrusage`` (this process plus the children it has waited for),
    so it counts every stage process of a pipeline run once they have exited.

    Attributes (after the ``with`` block):
        peak_pss_mb: highest summed PSS of the process tree, in MiB.
        cpu_s: user + system CPU seconds spent inside the block.
        wall_s: seconds inside the block.
    """

    def __init__(self, every_s: float = 0.1) -> None:
        self.every_s = every_s
        self.peak_pss_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_full_info().pss
                except psutil.Error:
                    pass
            self.peak_pss_mb = max(self.peak_pss_mb, total / 2**20)
            self._stop.wait(self.every_s)

    def __enter__(self) -> ResourceSampler:
        self._cpu0, self._t0 = self._cpu(), time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = self._cpu() - self._cpu0

    @property
    def cpu_percent(self) -> float:
        """CPU use in percent of one core (200% = both cores of a 2-core machine busy)."""
        return 100.0 * self.cpu_s / max(self.wall_s, 1e-9)


def read_frames(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices`` (0-based) of the video at ``path``, BGR uint8, read in one pass
    (the frames between are grabbed, not decoded); an index past the video's end is left out.

    Raises:
        SourceError: OpenCV cannot open the file.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path}")
    frames: dict[int, np.ndarray] = {}
    try:
        for index in range(max(indices, default=-1) + 1):
            ok, img = cap.read() if index in indices else (cap.grab(), None)
            if not ok:
                break
            if img is not None:
                frames[index] = img
    finally:
        cap.release()
    return frames


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> list[float | None]:
    """Percentiles of ``values`` (None for an empty sequence)."""
    if not len(values):
        return [None for _ in qs]
    arr = np.asarray(values, float)
    return [float(np.percentile(arr, q)) for q in qs]


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"NAME:KEY=VALUE,..."`` -> ``(NAME, {KEY: VALUE})``; values are JSON when they parse
    (``width=48`` -> 48, ``thresholds=[0.6,0.7,0.7]`` -> a list: commas inside brackets belong
    to the value), else strings."""
    name, _, opts = spec.partition(":")
    items = [o for o in re.split(r",(?![^\[]*\])", opts) if o]
    return name, parse_arch_options(items)


def match_boxes(
    reference: Sequence[Sequence[float]], other: Sequence[Sequence[float]], min_iou: float = 0.5
) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of xyxy boxes, highest IoU first; ``(i, j)`` index pairs of
    ``reference`` and ``other`` with IoU >= ``min_iou``."""
    pairs = sorted(
        ((iou(r, o), i, j) for i, r in enumerate(reference) for j, o in enumerate(other)), reverse=True
    )
    used_r: set[int] = set()
    used_o: set[int] = set()
    out = []
    for score, i, j in pairs:
        if score < min_iou or i in used_r or j in used_o:
            continue
        used_r.add(i)
        used_o.add(j)
        out.append((i, j))
    return out


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], file: Any = None) -> str:
    """Print (and return) a Markdown table."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    text = "\n".join(
        [
            f"### {title}",
            "",
            line(header),
            "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line(r) for r in cells),
            "",
        ]
    )
    print(text, file=file or sys.stdout, flush=True)
    return text


def run_config(data: dict[str, Any], name: str = "benchmark") -> tuple[RunResult, ResourceSampler]:
    """Validate and run a pipeline (as a dict) under a :class:`ResourceSampler`.

    Raises:
        RuntimeError: the run failed (the stage errors are in the message).
    """
    config = validate(data, f"<{name}>")
    with ResourceSampler() as res:
        result = run_pipeline(config, show_status=False)
    if result.exit_code != 0:
        raise RuntimeError(f"{name}: pipeline failed: {result.errors}")
    return result, res


def stream_stats(
    events: list[dict[str, Any]], stages: dict[str, dict[str, Any]], stream: str, streams: int
) -> dict[str, Any]:
    """One paced stream of a run: frames its source captured and dropped, its events, their rate
    (events per second of capture time) and capture -> event latency p50/p95/p99 (ms).

    Args:
        events: the run's frame events (all streams); stages: its merged stage metrics;
        streams: how many sources the run had (one source stage is named ``source``).
    """
    mine = [e for e in events if e["stream"] == stream]
    src = stages.get("source" if streams == 1 else f"source-{stream}", {})
    ts = [e["ts_capture_ns"] for e in mine]
    span = (max(ts) - min(ts)) / 1e9 if len(ts) > 1 else 0.0
    p50, p95, p99 = percentiles([(e["ts_event_ns"] - e["ts_capture_ns"]) / 1e6 for e in mine])
    return {
        "captured": src.get("frames_in"),
        "dropped": src.get("dropped"),
        "events": len(mine),
        "rate": len(mine) / span if span else None,
        "p50": p50,
        "p95": p95,
        "p99": p99,
    }


def paced_sources(video: Path, streams: int, frames: int) -> list[dict[str, Any]]:
    """``streams`` sources reading ``video`` as live cameras (paced at its fps, looping) for
    ``frames`` frames each, streams ``cam0``, ``cam1``, ..."""
    return [
        {
            "type": "video",
            "uri": str(video),
            "mode": "live",
            "loop": True,
            "max_frames": frames,
            "stream": f"cam{i}",
        }
        for i in range(streams)
    ]


def read_jsonl(path: Path, kind: str = "frame") -> list[dict[str, Any]]:
    """Events of one type from a jsonl sink's output."""
    with open(path, encoding="utf-8") as f:
        events = [json.loads(line) for line in f if line.strip()]
    return [e for e in events if e.get("type") == kind]


def set_threads(n: int) -> None:
    """Torch and OpenCV threads of this process (the naive loop uses every core)."""
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)


def cores() -> int:
    return os.cpu_count() or 1
