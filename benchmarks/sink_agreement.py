"""Do the sinks of one live run agree? A camera-paced clip, tracking and smoothing on, a fast
``jsonl`` sink and a sink that falls behind (``record`` with a per-frame delay, standing in for a
display or an encoder on a busy machine). Prints, per sink, the frames it got and missed, and on
the frames both got: how many faces carry a different smoothed label or score, and the mean
score difference. Also the bytes of one frame message with and without its pixels (what an
event sink is sent).

    python -m benchmarks.sink_agreement [--clip CLIP] [--frames 250] [--delay 0.1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from vidaffect.sample_data import data_dir

REPO = Path(__file__).resolve().parent.parent


def _record(path: Path) -> dict[int, dict[int, tuple[str, float]]]:
    out: dict[int, dict[int, tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        if line.endswith(" EOS"):
            continue
        _, seq, _, *faces = line.split()
        out[int(seq)] = {int(t): (lab, float(sc)) for t, lab, sc in (f.split(":") for f in faces)}
    return out


def _events(path: Path) -> dict[int, dict[int, tuple[str, float]]]:
    out: dict[int, dict[int, tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e.get("type") == "frame":
            out[e["seq"]] = {
                f["track_id"]: (f["smoothed"]["label"], f["smoothed"]["score"])
                for f in e["faces"]
                if f.get("smoothed")
            }
    return out


def message_bytes() -> tuple[int, int]:
    """Bytes of a 1080p frame message with one face, with and without its pixels."""
    from vidaffect.frames import Frame
    from vidaffect.runtime.codec import encode_frame

    face = {"bbox": [800.0, 300.0, 1000.0, 520.0], "score": 0.99, "track_id": 1}
    frame = Frame(np.zeros((1080, 1920, 3), np.uint8), "cam0", 0, 1, None, {"faces": [face]})
    full = sum(memoryview(p).nbytes for p in encode_frame(frame))
    try:
        bare = sum(memoryview(p).nbytes for p in encode_frame(frame, pixels=False))  # type: ignore[call-arg]
    except TypeError:  # an engine without pixel-less frames
        bare = full
    return full, bare


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, default=data_dir() / "videos" / "liveportrait_d0.mp4")
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--delay", type=float, default=0.1, help="seconds the slow sink spends per frame")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        events, record = Path(tmp) / "events.jsonl", Path(tmp) / "record.txt"
        cfg = {
            "pipeline": {"status": False},
            "source": {
                "type": "fake_camera",
                "uri": str(args.clip),
                "max_frames": args.frames,
                "resize": 320,
            },
            "detector": {"type": "haar"},
            "classifier": {"type": "fer"},
            "tracking": {"detect_every": 2},
            "sinks": [
                {"type": "jsonl", "path": str(events)},
                {"type": "record", "path": str(record), "smoothed": True, "delay_s": args.delay},
            ],
        }
        path = Path(tmp) / "p.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {"VIDAFFECT_PLUGINS": "vidaffect.testing"}
        proc = subprocess.run(
            [sys.executable, "-m", "vidaffect", "run", str(path), "--no-report"],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**__import__("os").environ, **env},
        )
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        fast, slow = _events(events), _record(record)
    common = sorted(set(fast) & set(slow))
    faces = [(fast[s][t], slow[s][t]) for s in common for t in fast[s] if t in slow[s]]
    labels = sum(a[0] != b[0] for a, b in faces)
    scores = sum(a[1] != b[1] for a, b in faces)
    diff = float(np.mean([abs(a[1] - b[1]) for a, b in faces])) if faces else 0.0
    full, bare = message_bytes()
    print(f"{args.frames} frames of {args.clip.name}, slow sink {args.delay * 1000:.0f} ms per frame")
    print("| sink | frames got | frames missed |")
    print("|---|---|---|")
    print(f"| jsonl (fast) | {len(fast)} | {args.frames - len(fast)} |")
    print(f"| record (slow) | {len(slow)} | {args.frames - len(slow)} |")
    print(
        f"\non the {len(common)} frames both got, {len(faces)} smoothed faces: label differs on {labels}, "
        f"score on {scores}; mean |score difference| {diff:.4f}"
    )
    print(f"a 1080p frame message: {full:,} bytes with pixels, {bare:,} without (what an event sink gets)")


if __name__ == "__main__":
    main()
