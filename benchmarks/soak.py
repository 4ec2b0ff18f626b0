"""Soak test: a long live run, watching memory, file descriptors and frame order.

    python -m benchmarks.soak VIDEO [--minutes 10] [--every 30]

Runs VIDEO as a camera (``mode: live``, looping, paced at its fps) through MTCNN, the FER
classifier and tracking into a ``jsonl`` and a ``zmq_events`` sink for ``--minutes``, and
samples every stage process's PSS and open file descriptors every ``--every`` seconds. At the
end it prints the samples (the first taken after a one-minute warm-up is the baseline), the
growth from baseline to end, and checks the events: sequence numbers strictly increasing,
no frame lost, no malformed message.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import print_table, read_jsonl


def sample(proc: psutil.Process) -> tuple[float, int, int]:
    """(PSS MiB, open fds, processes) of ``proc`` and its descendants."""
    pss = 0
    fds = 0
    procs = [proc, *proc.children(recursive=True)]
    for p in procs:
        try:
            pss += p.memory_full_info().pss
            fds += p.num_fds()
        except psutil.Error:
            pass
    return pss / 2**20, fds, len(procs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="vidaffect-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    events, metrics = out / "events.jsonl", out / "metrics.json"
    cfg = out / "soak.yaml"
    cfg.write_text(
        json.dumps(
            {
                "pipeline": {"name": "soak", "metrics_file": str(metrics), "stream_id": "soak"},
                "source": {"type": "video", "uri": str(args.video), "mode": "live", "loop": True},
                "detector": {"type": "mtcnn"},
                "classifier": {"type": "fer"},
                "tracking": {"detect_every": 5},
                "sinks": [
                    {"type": "jsonl", "path": str(events), "flush_every": 100},
                    {"type": "zmq_events", "endpoint": "tcp://127.0.0.1:*"},
                ],
            }
        )
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "vidaffect", "run", str(cfg), "--no-status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parent = psutil.Process(run.pid)
    rows: list[list[Any]] = []
    t0 = time.monotonic()
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            pss, fds, n = sample(parent)
            frames = sum(1 for _ in open(events, "rb")) if events.exists() else 0
            rows.append([round((time.monotonic() - t0) / 60, 2), n, round(pss, 1), fds, frames])
            stop.wait(args.every)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    time.sleep(args.minutes * 60)
    stop.set()
    thread.join()
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    print_table(
        f"soak: {args.video.name} live at its fps for {args.minutes:g} min",
        ["minute", "processes", "PSS MiB", "open fds", "event lines"],
        rows,
    )
    base = next((r for r in rows if r[0] >= 1.0), rows[0])
    last = rows[-1]
    print(
        f"growth after warm-up (minute {base[0]} -> {last[0]}): PSS {last[2] - base[2]:+.1f} MiB, "
        f"fds {last[3] - base[3]:+d}"
    )
    frames = read_jsonl(events)
    seqs = [e["seq"] for e in frames]
    order_errors = sum(1 for a, b in zip(seqs, seqs[1:]) if b <= a)
    stages = json.loads(metrics.read_text()) if metrics.exists() else {}
    lost = sum(int(s.get("lost") or 0) for s in stages.values())
    malformed = sum(int(s.get("malformed") or 0) for s in stages.values())
    src = stages.get("source", {})
    print(
        f"exit code {run.returncode}; frames captured {src.get('frames_in')}, dropped {src.get('dropped')}, "
        f"events {len(frames)}; order errors {order_errors}, lost {lost}, malformed {malformed}"
    )
    if run.returncode != 0:
        print(err, file=sys.stderr)
    print(f"outputs: {out}")
    return 0 if run.returncode == 0 and order_errors == 0 and lost == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
