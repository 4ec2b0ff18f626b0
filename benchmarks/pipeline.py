"""Naive single-process loop versus the vidaffect pipeline, on the same clips and models.

    python -m benchmarks.pipeline VIDEO [VIDEO ...] [--detect-every 5] [--out DIR]

For each clip, in one invocation:

(a) **naive loop**, the shape of typical emotion-recognition scripts: read a frame, run
    MTCNN on it, classify each face on its own, draw, write the frame to an MP4 -- one
    process, torch and OpenCV using every core;
(b) **vidaffect**: the same MTCNN settings and FER checkpoint as a pipeline (offline mode, so
    every frame is annotated and written), with face tracking (detection every
    ``--detect-every`` frames and whenever a track is new, missed or leaving), faces batched
    across frames in the classifier, one process per stage.

Printed per clip: end-to-end fps and the speed-up, busy seconds per stage, capture -> event
latency percentiles, CPU use (100% = one core), peak memory (PSS) of the process tree, faces per
frame, and the agreement of per-face emotion labels of (b) with (a) on faces matched by IoU
>= 0.5 in the same frame.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import (
    ResourceSampler,
    cores,
    match_boxes,
    percentiles,
    print_table,
    read_jsonl,
    run_config,
    set_threads,
)
from vidaffect.frames import Frame
from vidaffect.imaging.draw import annotate

MATCH_IOU = 0.5


def naive_loop(
    video: Path, out_mp4: Path, detector: dict[str, Any], classifier: dict[str, Any], threads: int
) -> dict[str, Any]:
    """Run the single-process loop; per-frame faces (bbox + label) and timings."""
    from vidaffect_plugins.classifiers.fer import FERClassifier
    from vidaffect_plugins.detectors.mtcnn import MTCNNDetector

    set_threads(threads)
    det = MTCNNDetector(MTCNNDetector.Config(**{k: v for k, v in detector.items() if k != "type"}))
    clf = FERClassifier(FERClassifier.Config(**{k: v for k, v in classifier.items() if k != "type"}))
    det.open()
    clf.open()
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    busy = {"read": 0.0, "detect": 0.0, "classify": 0.0, "draw+write": 0.0}
    frames: list[list[dict[str, Any]]] = []
    latency_ms: list[float] = []
    with ResourceSampler() as res:
        while True:
            t0 = time.perf_counter()
            ok, image = cap.read()
            t1 = time.perf_counter()
            busy["read"] += t1 - t0
            if not ok:
                break
            faces = det.detect([image])[0].to_faces()
            t2 = time.perf_counter()
            for face in faces:  # one face at a time, as such loops do
                clf.classify([Frame(image, "naive", len(frames), 0, meta={"faces": [face]})])
            t3 = time.perf_counter()
            annotated = annotate(image, faces, clf.labels)
            if writer is None:
                h, w = annotated.shape[:2]
                writer = cv2.VideoWriter(str(out_mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            writer.write(annotated)
            t4 = time.perf_counter()
            busy["detect"] += t2 - t1
            busy["classify"] += t3 - t2
            busy["draw+write"] += t4 - t3
            latency_ms.append((t4 - t0) * 1000)
            frames.append(
                [
                    {
                        "bbox": f["bbox"],
                        "label": f["emotion"]["label"],
                        "probs": [float(v) for v in f["emotion"]["probs"]],
                    }
                    for f in faces
                ]
            )
        if writer is not None:
            writer.release()
    cap.release()
    return {"frames": frames, "busy": busy, "latency_ms": latency_ms, "res": res}


def pipeline_run(
    video: Path,
    out_dir: Path,
    detector: dict[str, Any],
    classifier: dict[str, Any],
    detect_every: int,
    detector_workers: int,
    threads: list[int] | None = None,
) -> dict[str, Any]:
    """Run the vidaffect pipeline; per-frame faces (bbox + raw and smoothed label) and metrics."""
    events_path = out_dir / "events.jsonl"
    data = {
        "pipeline": {"name": "benchmark", "status": False, "stream_id": "bench"},
        "source": {"type": "video", "uri": str(video), "mode": "offline"},
        "detector": {**detector, "workers": detector_workers},
        "classifier": dict(classifier),
        "sinks": [
            {"type": "video", "path": str(out_dir / "vidaffect.mp4")},
            {"type": "jsonl", "path": str(events_path), "flush_every": 100},
        ],
    }
    if detect_every > 0:
        data["tracking"] = {"detect_every": detect_every}
    if threads:
        data["detector"]["threads"], data["classifier"]["threads"] = threads
    result, res = run_config(data, f"pipeline on {video.name}")
    events = read_jsonl(events_path)
    frames = [
        [
            {
                "bbox": f["bbox"],
                "label": (f["emotion"] or {}).get("label"),
                "tracked": f.get("tracked", False),
            }
            for f in e["faces"]
        ]
        for e in sorted(events, key=lambda e: e["seq"])
    ]
    latency_ms = [(e["ts_event_ns"] - e["ts_capture_ns"]) / 1e6 for e in events]
    busy = {name.split("-")[-1]: float(m.get("busy_s") or 0) for name, m in result.stages.items()}
    cpu_s = sum(float(m.get("cpu_s") or 0) for m in result.stages.values())
    return {
        "frames": frames,
        "busy": busy,
        "latency_ms": latency_ms,
        "res": res,
        "wall_s": result.wall_s,
        "cpu_percent": 100 * cpu_s / result.wall_s,
        "detected": result.stages.get("detector", {}).get("detected"),
    }


def matched_faces(
    reference: list[list[dict[str, Any]]], other: list[list[dict[str, Any]]], tracked: bool | None = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs ``(reference face, other face)`` matched per frame (greedy, IoU >= 0.5); with
    ``tracked`` True/False only faces of ``other`` whose box was predicted/detected."""
    for ref, oth in zip(reference, other):
        for i, j in match_boxes([r["bbox"] for r in ref], [o["bbox"] for o in oth], MATCH_IOU):
            if tracked is None or oth[j].get("tracked", False) == tracked:
                yield ref[i], oth[j]


def agreement(
    reference: list[list[dict[str, Any]]], other: list[list[dict[str, Any]]], tracked: bool | None = None
) -> tuple[float | None, int, int]:
    """Share of matched faces (:func:`matched_faces`) whose labels agree.

    Returns ``(agreement, matched faces, reference faces)``.
    """
    pairs = list(matched_faces(reference, other, tracked))
    same = sum(r["label"] == o["label"] for r, o in pairs)
    total = sum(len(ref) for ref in reference)
    return (same / len(pairs) if pairs else None), len(pairs), total


def reference_confidence(
    reference: list[list[dict[str, Any]]], other: list[list[dict[str, Any]]], tracked: bool | None = None
) -> dict[bool, tuple[float, float, int]]:
    """How sure the reference (naive loop) was of its label, split by agreement: ``{agrees:
    (mean top-1 probability, mean gap from top-1 to top-2 probability, faces)}``."""
    tops: dict[bool, list[list[float]]] = {True: [], False: []}
    for r, o in matched_faces(reference, other, tracked):
        tops[r["label"] == o["label"]].append(sorted(r["probs"], reverse=True)[:2])
    return {
        agrees: (float(np.mean([t[0] for t in two])), float(np.mean([t[0] - t[1] for t in two])), len(two))
        for agrees, two in tops.items()
        if two
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument(
        "--detect-every", type=int, default=5, help="vidaffect tracking: detect every N frames (0: off)"
    )
    ap.add_argument("--detector-workers", type=int, default=1)
    ap.add_argument(
        "--threads",
        type=int,
        nargs=2,
        metavar=("DETECTOR", "CLASSIFIER"),
        default=None,
        help="torch threads per detector / classifier process (default: the engine's)",
    )
    ap.add_argument(
        "--max-side",
        type=int,
        default=960,
        help="vidaffect: MTCNN detects on a copy downscaled to this longest side (0: full size)",
    )
    ap.add_argument(
        "--naive-max-side",
        type=int,
        default=0,
        help="naive loop: the same for its MTCNN (0: full size, as such scripts do)",
    )
    ap.add_argument("--checkpoint", default="default", help="FER checkpoint (shipped name or path)")
    ap.add_argument("--out", type=Path, default=None, help="keep outputs here (default: a temp folder)")
    args = ap.parse_args(argv)
    detector: dict[str, Any] = {"type": "mtcnn", "preset": "fast", "max_side": args.max_side or None}
    naive_detector = {**detector, "max_side": args.naive_max_side or None}
    classifier = {"type": "fer", "checkpoint": args.checkpoint}
    out_root = args.out or Path(tempfile.mkdtemp(prefix="vidaffect-bench-"))
    for video in args.videos:
        if not video.is_file():
            raise SystemExit(f"{video}: no such video")
        out = out_root / video.stem
        out.mkdir(parents=True, exist_ok=True)
        naive = naive_loop(video, out / "naive.mp4", naive_detector, classifier, cores())
        ours = pipeline_run(
            video, out, detector, classifier, args.detect_every, args.detector_workers, args.threads
        )
        agree, matched, total = agreement(naive["frames"], ours["frames"])
        split = {k: agreement(naive["frames"], ours["frames"], tracked=k) for k in (False, True)}
        rows = []
        for name, r in (("naive loop", naive), ("vidaffect", ours)):
            n = len(r["frames"])
            fps = n / r.get("wall_s", r["res"].wall_s)  # the pipeline's from "go": start-up excluded
            p50, p95, p99 = percentiles(r["latency_ms"])
            busy = ", ".join(f"{k} {v:.1f}" for k, v in r["busy"].items())
            faces = sum(len(f) for f in r["frames"]) / max(n, 1)
            rows.append(
                [
                    name,
                    n,
                    fps,
                    None,
                    busy,
                    p50,
                    p95,
                    p99,
                    r.get("cpu_percent", r["res"].cpu_percent),
                    r["res"].peak_pss_mb,
                    faces,
                ]
            )
        rows[1][3] = rows[1][2] / rows[0][2]
        rows[0][3] = 1.0
        height, width = cv2.VideoCapture(str(video)).read()[1].shape[:2]
        print_table(
            f"{video.name} ({width}x{height}), {cores()} cores; vidaffect: detect every "
            f"{args.detect_every or 1} frames, MTCNN max side {args.max_side or 'full'}; naive: "
            f"MTCNN max side {args.naive_max_side or 'full'}",
            [
                "run",
                "frames",
                "fps",
                "speed-up",
                "busy s per stage",
                "lat p50 ms",
                "lat p95 ms",
                "lat p99 ms",
                "CPU %",
                "peak PSS MiB",
                "faces/frame",
            ],
            rows,
        )
        detected = ours.get("detected")
        pct = lambda a: f"{a * 100:.1f}%" if a is not None else "-"  # noqa: E731
        print(
            f"label agreement with the naive loop: {pct(agree)} of {matched} matched faces "
            f"({total} naive faces); on detected boxes {pct(split[False][0])} of {split[False][1]}, "
            f"on tracked boxes {pct(split[True][0])} of {split[True][1]}; the detector ran on "
            f"{detected} of {len(ours['frames'])} frames",
            flush=True,
        )
        sure = reference_confidence(naive["frames"], ours["frames"], tracked=True)
        if True in sure and False in sure:
            print(
                f"on tracked boxes, the naive loop's top-1 probability averaged {sure[True][0]:.2f} where "
                f"the labels agreed and {sure[False][0]:.2f} where they disagreed; its gap to the second "
                f"label {sure[True][1]:.2f} and {sure[False][1]:.2f}",
                flush=True,
            )
        print(flush=True)
    print(f"outputs: {out_root}")


if __name__ == "__main__":
    main()
