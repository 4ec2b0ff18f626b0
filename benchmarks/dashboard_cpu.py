"""What the dashboard costs: a ``preview`` sink publishing a clip's frames as 640x480 JPEGs at
15 fps, a ``vidaffect dashboard`` process, and 0, 1, 2 and 4 viewers reading its MJPEG stream
over HTTP (as many ``<img>`` tags would). Prints the dashboard process's CPU (% of one core,
psutil) and the frames each viewer got per second.

    python -m benchmarks.dashboard_cpu [--clip CLIP] [--seconds 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import httpx
import psutil

from vidaffect.frames import Frame
from vidaffect.runtime.transport import free_tcp_port
from vidaffect.sample_data import data_dir
from vidaffect.testing.probe import wait_until
from vidaffect_plugins.sinks.preview import PreviewSink

REPO = Path(__file__).resolve().parent.parent


def _viewer(url: str, stop: threading.Event, counts: list[int], i: int) -> None:
    with httpx.stream("GET", url, timeout=10) as r:
        for chunk in r.iter_bytes():
            counts[i] += chunk.count(b"Content-Type: image/jpeg")
            if stop.is_set():
                return


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, default=data_dir() / "videos" / "pyfeat_WolfgangLanger_Pexels.mp4")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=15.0)
    args = ap.parse_args(argv)
    cap = cv2.VideoCapture(str(args.clip))
    frames = []
    while len(frames) < 150:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA))
    if not frames:
        sys.exit(f"cannot read {args.clip}")
    endpoint, port = f"tcp://127.0.0.1:{free_tcp_port()}", free_tcp_port()
    sink = PreviewSink(PreviewSink.Config(endpoint=endpoint, max_fps=args.fps, max_side=640))
    sink.open()
    dash = subprocess.Popen(
        [sys.executable, "-m", "vidaffect", "dashboard", endpoint, "--port", str(port)],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    stop_pub = threading.Event()

    def publish() -> None:
        n = 0
        while not stop_pub.is_set():
            sink.write(Frame(frames[n % len(frames)], "cam0", n, time.time_ns(), None, {"faces": []}))
            n += 1
            time.sleep(1.0 / args.fps)

    pub = threading.Thread(target=publish, daemon=True)
    pub.start()
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return bool(httpx.get(base + "/api/streams", timeout=1).json())
            except (httpx.HTTPError, ValueError):
                return False

        wait_until(up, "the dashboard", timeout=30)
        proc = psutil.Process(dash.pid)
        print(f"{args.clip.name} as 640x480 JPEGs at {args.fps:g} fps; {args.seconds:g} s per row")
        print("| viewers | dashboard CPU % of one core | frames/s per viewer |")
        print("|---|---|---|")
        for n in (0, 1, 2, 4):
            stop, counts = threading.Event(), [0] * n
            threads = [
                threading.Thread(
                    target=_viewer, args=(base + "/streams/cam0/mjpeg", stop, counts, i), daemon=True
                )
                for i in range(n)
            ]
            for t in threads:
                t.start()
            time.sleep(1.0)  # connected and streaming
            c0, t0, f0 = sum(proc.cpu_times()[:2]), time.monotonic(), list(counts)
            time.sleep(args.seconds)
            cpu = 100 * (sum(proc.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
            rates = [(c - f) / args.seconds for c, f in zip(counts, f0)]
            stop.set()
            per_viewer = f"{sum(rates) / n:.1f}" if n else "-"
            print(f"| {n} | {cpu:.1f} | {per_viewer} |")
            for t in threads:
                t.join(timeout=5)
    finally:
        stop_pub.set()
        dash.terminate()
        dash.wait(10)
        sink.close()


if __name__ == "__main__":
    main()
