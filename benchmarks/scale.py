"""Scaling out: N paced camera streams with the local runner and the Ray runner, and a capacity
model from measured per-stage CPU costs.

    python -m benchmarks.scale [--streams 2 4] [--seconds 15] [--skip-ray]

Part 1 runs N copies of a clip as live cameras (paced at the clip's frame rate, drop-oldest)
through MTCNN (``fast``), the FER classifier and a JSONL sink (events only, so with the Ray
runner the classifier gets face patches, not frames), three ways: the local runner, the Ray
runner on a one-node cluster, and the Ray runner on two nodes of this machine (the classifier
placed on the second node by a custom resource; sources, detectors and the sink pinned to the
first, as cameras' boxes would be). Printed per
run and stream: frames captured, dropped at the source, events, events/s, capture -> event
latency p50/p95, and the bytes that crossed between nodes (the frame messages of every stage
whose next stage ran on another node). Simulated nodes share this machine's cores, so the
two-node rows show the runner's overhead and the traffic, not more capacity.

Part 2 runs a 1080p and a 720p clip offline (every frame, no pacing) with the local runner and
reads each stage's CPU seconds (``cpu_s``, the process's user + system time in its loop): CPU
per frame for the source (decoding), the detector and the sink, and per face for the
classifier. From those it prints cameras per node for 2, 8 and 32 cores at 5, 15 and 30 fps,
assuming the faces per frame of the measured clip and cores used to 80%, and the bandwidth per
camera between a camera's node and a classifier node: face patches against whole frames.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2

from benchmarks.common import paced_sources, print_table, read_jsonl, run_config, stream_stats
from vidaffect.runtime.supervisor import RunResult
from vidaffect.sample_data import data_dir

DATA_DIR = data_dir()
CLIP = "liveportrait_d3.mp4"
COST_CLIPS = {"1080p": "facenet_video.mp4", "720p": "liveportrait_src_s18.mp4"}
CORES = (2, 8, 32)
RATES = (5, 15, 30)
HEADROOM = 0.8  # share of a node's cores the model plans to use


def pipeline(
    video: Path, streams: int, seconds: float, events: Path, runner: dict[str, Any]
) -> dict[str, Any]:
    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 30.0
    return {
        "pipeline": {"name": f"scale-{streams}", "status": False, **runner},
        "sources": paced_sources(video, streams, int(seconds * fps)),
        "detector": {"type": "mtcnn", "preset": "fast"},
        "classifier": {"type": "fer"},
        "tracking": {"detect_every": 5},
        "sinks": [{"type": "jsonl", "path": str(events), "flush_every": 100}],
    }


def cross_node_bytes(result: RunResult, downstream: dict[str, str]) -> int | None:
    """Bytes of the frame messages sent by stages whose next stage ran on another node (None
    with the local runner)."""
    if not result.placement:
        return None
    node = {label.split("[")[0]: where.get("node_id") for label, where in result.placement.items()}
    total = 0
    for stage, m in result.stages.items():
        nxt = downstream.get(stage) or ("classifier" if stage.startswith("detector") else None)
        if nxt is not None and node.get(stage) != node.get(nxt):
            total += int(m.get("bytes_out") or 0)
    return total


def stream_rows(name: str, streams: int, result: RunResult, events: Path) -> list[list[Any]]:
    evs = read_jsonl(events)
    downstream = {f"source-cam{i}": "detector" for i in range(streams)} | {
        "source": "detector",
        "detector": "classifier",
        "classifier": "sink-0-jsonl",
    }
    crossed = cross_node_bytes(result, downstream)
    rows = []
    for i in range(streams):
        st = stream_stats(evs, result.stages, f"cam{i}", streams)
        rows.append(
            [
                name,
                streams,
                f"cam{i}",
                *(st[k] for k in ("captured", "dropped", "events", "rate", "p50", "p95")),
                (crossed / 2**20 if crossed is not None else None) if i == 0 else None,
            ]
        )
    return rows


def run_streams(name: str, runner: dict[str, Any], args: argparse.Namespace, out: Path) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for n in args.streams:
        events = out / f"{name.replace(' ', '_')}-{n}.jsonl"
        result, _ = run_config(pipeline(DATA_DIR / "videos" / CLIP, n, args.seconds, events, runner), name)
        rows += stream_rows(name, n, result, events)
    return rows


def ray_runs(args: argparse.Namespace, out: Path) -> list[list[Any]]:
    """The one-node rows, then (a second node added) the two-node rows, on one cluster of this
    machine, ended by PID. One cluster: a process keeps the first token it joined with."""
    from vidaffect.testing.ray_cluster import LocalRayCluster

    cluster = LocalRayCluster(head_cpus=os.cpu_count() or 2, head_resources={"camera_box": 1000})
    old = {k: os.environ.get(k) for k in cluster.env}
    os.environ.update(cluster.env)  # before this process first joins the cluster
    try:
        runner: dict[str, Any] = {"runner": "ray", "ray": {"address": cluster.address}}
        rows = run_streams("ray, 1 node", runner, args, out)
        cluster.add_node(num_cpus=os.cpu_count() or 2, resources={"classifier_box": 1})
        return rows + run_two_nodes(runner, args, out)
    finally:
        import ray

        ray.shutdown()
        cluster.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_two_nodes(runner: dict[str, Any], args: argparse.Namespace, out: Path) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for n in args.streams:
        events = out / f"ray2-{n}.jsonl"
        data = pipeline(DATA_DIR / "videos" / CLIP, n, args.seconds, events, runner)
        data["classifier"]["placement"] = {"resources": {"classifier_box": 1}}
        for source in data["sources"]:  # the cameras' node (the detector follows its source)
            source["placement"] = {"resources": {"camera_box": 1}}
        data["sinks"][0]["placement"] = {"resources": {"camera_box": 1}}
        result, _ = run_config(data, "ray, 2 nodes")
        rows += stream_rows("ray, 2 nodes", n, result, events)
    return rows


def patch_bytes_per_face() -> int:
    """The largest face patch the FER classifier asks for (its side squared, gray or BGR)."""
    from vidaffect_plugins.classifiers.fer import FERClassifier

    patch = FERClassifier.face_patch(FERClassifier.Config())
    return patch.side**2 * (1 if patch.gray else 3)


def stage_costs(video: Path, frames: int) -> dict[str, float]:
    """CPU seconds per frame of source, detector and sink, per face of the classifier, faces
    per frame, and the bytes of a whole frame message and of the face patches per frame."""
    with tempfile.TemporaryDirectory() as tmp:
        data = pipeline(video, 1, 0, Path(tmp) / "e.jsonl", {})
        data["sources"][0].update({"mode": "offline", "loop": False, "max_frames": frames})
        result, _ = run_config(data, f"costs {video.name}")
    st = result.stages
    n = max(1, st["source"]["frames_out"])
    faces = max(1, st["detector"].get("faces") or 0)
    h, w = cv2.VideoCapture(str(video)).read()[1].shape[:2]
    return {
        "source": st["source"]["cpu_s"] / n,
        "detector": st["detector"]["cpu_s"] / n,
        "classifier_face": st["classifier"]["cpu_s"] / faces,
        "sink": st["sink-0-jsonl"]["cpu_s"] / n,
        "faces": faces / n,
        "frame_bytes": h * w * 3,
        "patch_bytes": patch_bytes_per_face() * faces / n,  # at most: smaller faces send less
    }


def capacity_rows(costs: dict[str, dict[str, float]]) -> list[list[Any]]:
    rows = []
    for res, c in costs.items():
        per_frame = c["source"] + c["detector"] + c["sink"] + c["classifier_face"] * c["faces"]
        for fps in RATES:
            cameras = [HEADROOM * cores / (per_frame * fps) for cores in CORES]
            rows.append(
                [
                    res,
                    fps,
                    c["faces"],
                    per_frame * 1e3,
                    *cameras,
                    c["patch_bytes"] * fps * 8 / 1e6,
                    c["frame_bytes"] * fps * 8 / 1e6,
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--seconds", type=float, default=15.0, help="capture time per stream")
    ap.add_argument("--cost-frames", type=int, default=90, help="frames of each clip for the costs")
    ap.add_argument("--skip-ray", action="store_true", help="local runner only (Ray not installed)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="vidaffect-scale-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = run_streams("local", {}, args, out)
    if not args.skip_ray:
        rows += ray_runs(args, out)
    print_table(
        f"{CLIP} paced as cameras, {args.seconds:.0f} s per stream, MTCNN fast + FER, detect every 5, "
        f"{os.cpu_count()} cores",
        ["runner", "streams", "stream", "captured", "dropped", "events", "events/s", "lat p50 ms",
         "lat p95 ms", "MiB between nodes"],
        rows,
    )  # fmt: skip
    costs = {
        res: stage_costs(DATA_DIR / "videos" / clip, args.cost_frames) for res, clip in COST_CLIPS.items()
    }
    (out / "costs.json").write_text(json.dumps(costs, indent=1))
    print_table(
        f"capacity model: measured CPU per frame (per face for the classifier), cores used to "
        f"{HEADROOM:.0%}, faces per frame as in the measured clip",
        ["clip", "fps", "faces/frame", "CPU ms/frame", *(f"cameras @{c} cores" for c in CORES),
         "Mbit/s faces", "Mbit/s frames"],
        capacity_rows(costs),
    )  # fmt: skip


if __name__ == "__main__":
    main()
