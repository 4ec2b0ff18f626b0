"""The Ray runner (``pipeline.runner: ray``) on real Ray clusters of this machine.

One cluster for the module (``ray.cluster_utils.Cluster`` in a helper process,
:class:`~vidaffect.testing.ray_cluster.LocalRayCluster`): a head node and a worker node with a
custom resource (``gpu_box``), pinned to 127.0.0.1, with HOME and the auth token in a temp
folder. Each test runs ``vidaffect run`` as a driver of that cluster on a real clip: the
classifier placed on the worker node, a stage actor killed (SIGKILL) and restarted by Ray, a
node removed mid-run, a stage no node can take. The last test starts the cluster with the real
``ray start`` CLI on 127.0.0.2 and 127.0.0.3 and ends every process it started by PID.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import face_pipeline, line_count, read_events, run_cli, start_run, wait_for

from vidaffect.testing.ray_cluster import LocalRayCluster, kill_pids, processes_of, ray_env

pytest.importorskip("ray", reason="needs Ray for the ray runner: pip install 'vidaffect[ray]'")

pytestmark = [pytest.mark.slow, NEEDS_DATA]

CLIP = DATA / "videos" / "liveportrait_d3.mp4"
PLACED = re.compile(r"^\s+(\S+)\s+-> (\S+) \(node ([0-9a-f?]+), pid (\d+|\?)\)$", re.M)


@dataclass
class RayCluster:
    local: LocalRayCluster
    worker: str  # the id of the worker node with resource gpu_box

    @property
    def address(self) -> str:
        return self.local.address

    @property
    def env(self) -> dict[str, str]:
        return self.local.env


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    local = LocalRayCluster(head_cpus=2)
    try:
        yield RayCluster(local, local.add_node(num_cpus=2, resources={"gpu_box": 1}))
    finally:
        local.close()


def placement(stderr: str) -> dict[str, tuple[str, str, int | None]]:
    """What ``vidaffect run`` printed: worker label -> (ip, node id prefix, pid)."""
    return {m[1]: (m[2], m[3], int(m[4]) if m[4] != "?" else None) for m in PLACED.finditer(stderr)}


def pipeline(tmp_path: Path, cluster: RayCluster | None, classifier: dict[str, Any], **settings: Any) -> Path:
    """The test pipeline (haar, fer, tracking, a JSONL sink, metrics file) on ``CLIP``, with the
    ray runner on ``cluster`` (None: the local runner) and ``classifier`` keys added."""
    patches = settings.pop("face_patches", True)
    engine = (
        {"runner": "ray", "ray": {"address": cluster.address, "face_patches": patches}}
        if cluster is not None
        else {}
    )
    cfg = face_pipeline(
        tmp_path,
        CLIP,
        [{"type": "jsonl", "path": str(tmp_path / "e.jsonl")}],
        metrics_file=str(tmp_path / "m.json"),
        **engine,
        **settings,
    )
    data = json.loads(cfg.read_text())
    data["classifier"].update(classifier)
    cfg.write_text(json.dumps(data))
    return cfg


def event_keys(path: Path) -> list[tuple[Any, ...]]:
    """What must match between runners: each frame's seq, and per face its track, labels and
    rounded bbox."""
    return [
        (
            e["seq"],
            tuple(
                (
                    f.get("track_id"),
                    f["emotion"]["label"],
                    f["smoothed"]["label"],
                    tuple(round(v) for v in f["bbox"]),
                )
                for f in e["faces"]
            ),
        )
        for e in read_events(path)
    ]


def assert_accounted(metrics: Path, total: int | None) -> dict[str, dict[str, Any]]:
    """frames in == out + dropped at every stage, sent == in + lost along every hop, and (with
    ``total``, the frames the source sent) every one of them is in the events or counted lost or
    dropped once."""
    stages = json.loads(metrics.read_text())
    order = ["source", "detector", "classifier", "sink-0-jsonl"]
    for name in order:
        m = stages[name]
        assert m["frames_in"] == m["frames_out"] + m["dropped"], (name, m)
    for up, down in zip(order, order[1:]):
        assert stages[up]["frames_out"] == stages[down]["frames_in"] + stages[down]["lost"], (
            up,
            down,
            stages,
        )
    if total is not None:
        assert stages["source"]["frames_out"] == total
        written = len(read_events(metrics.parent / "e.jsonl"))
        assert total - written == sum(m["lost"] + m["dropped"] for m in stages.values()), stages
    return stages


def run_removing_node(cfg: Path, cluster: RayCluster, nodes: list[str], stage: str, after_events: int) -> str:
    """Run ``cfg`` on ``cluster``; once ``after_events`` events are written, remove the node
    (one of ``nodes``) that ``stage`` was placed on. Asserts that the run ended cleanly and that
    the stage was restarted; returns its stderr."""
    folder = cfg.parent
    log = folder / "stderr.txt"
    with log.open("w") as err:
        proc = start_run(cfg, env=cluster.env, stderr=err)
        wait_for(lambda: line_count(folder / "e.jsonl") > after_events, "frames flowing", timeout=400)
        node_id = placement(log.read_text())[stage][1]
        assert any(n.startswith(node_id) for n in nodes)
        cluster.local.remove_node(node_id)
        proc.communicate(timeout=300)
    stderr = log.read_text()
    assert proc.returncode == 0, stderr
    assert "restarting, 1/2" in stderr
    return stderr


def test_classifier_placed_on_the_worker_node_gives_the_local_runs_events(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"
    local_dir.mkdir()
    ray_dir.mkdir()
    local = run_cli("run", str(pipeline(local_dir, None, {})), "--no-status", timeout=300)
    assert local.returncode == 0, local.stderr
    # whole frames to the classifier, as locally (face patches are tested on their own)
    cfg = pipeline(
        ray_dir, ray_cluster, {"placement": {"resources": {"gpu_box": 1}}}, max_frames=40, face_patches=False
    )
    on_ray = run_cli("run", str(cfg), "--no-status", timeout=400, env=ray_cluster.env)
    assert on_ray.returncode == 0, on_ray.stderr
    placed = placement(on_ray.stderr)
    assert set(placed) == {"source", "detector", "classifier", "sink-0-jsonl"}, on_ray.stderr
    assert placed["classifier"][1] == ray_cluster.worker[:8]
    assert event_keys(ray_dir / "e.jsonl") == event_keys(local_dir / "e.jsonl")[:40]
    stages = assert_accounted(ray_dir / "m.json", 40)
    assert all(m["lost"] == 0 and m["dropped"] == 0 for m in stages.values())


def test_a_killed_stage_actor_is_restarted_by_ray(ray_cluster: RayCluster, tmp_path: Path) -> None:
    cfg = pipeline(
        tmp_path,
        ray_cluster,
        {"placement": {"resources": {"gpu_box": 1}}, "on_error": "restart", "max_restarts": 2},
        max_frames=240,
    )
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = start_run(cfg, env=ray_cluster.env, stderr=err)
        wait_for(lambda: line_count(tmp_path / "e.jsonl") > 40, "frames flowing", timeout=400)
        first = placement(log.read_text())["classifier"]
        assert first[2] is not None
        os.kill(first[2], signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    stderr = log.read_text()
    assert proc.returncode == 0, stderr
    assert "classifier failed" in stderr and "restarting, 1/2" in stderr
    seqs = [e["seq"] for e in read_events(tmp_path / "e.jsonl")]
    assert seqs == sorted(set(seqs)) and seqs[-1] >= 200  # went on after the restart
    assert_accounted(tmp_path / "m.json", 240)


def test_a_removed_node_s_stage_is_placed_again(ray_cluster: RayCluster, tmp_path: Path) -> None:
    nodes = [ray_cluster.local.add_node(num_cpus=1, resources={"edge_box": 1}) for _ in range(2)]
    cfg = pipeline(
        tmp_path,
        ray_cluster,
        {"placement": {"resources": {"edge_box": 1}}, "on_error": "restart", "max_restarts": 2},
        max_frames=240,
    )
    data = json.loads(cfg.read_text())
    for stage in (
        data["source"],
        data["sinks"][0],
    ):  # kept off the edge_box nodes (the detector follows the source)
        stage["placement"] = {"resources": {"gpu_box": 0.1}}
    cfg.write_text(json.dumps(data))
    run_removing_node(cfg, ray_cluster, nodes, "classifier", after_events=40)
    seqs = [e["seq"] for e in read_events(tmp_path / "e.jsonl")]
    assert seqs == sorted(set(seqs)) and seqs[-1] >= 200
    assert_accounted(tmp_path / "m.json", 240)


def test_a_live_source_on_a_removed_node_numbers_on_from_another(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """A live source whose node goes is started again by Ray on another node, where its
    sequence file is not: it numbers on above the old frames (the supervisor's estimate), and
    the detector takes its frames at once (each frame carries its source's incarnation) instead
    of dropping them as late until the new numbers catch up with the old."""
    nodes = [ray_cluster.local.add_node(num_cpus=1, resources={"cam_box": 1}) for _ in range(2)]
    cfg = pipeline(tmp_path, ray_cluster, {}, max_frames=300)  # 30 s of camera at 10 fps
    data = json.loads(cfg.read_text())
    data["source"].update(
        mode="live",
        loop=True,
        fps=10,
        placement={"resources": {"cam_box": 1}},
        on_error="restart",
        max_restarts=2,
    )
    for stage in (data["detector"], data["classifier"], data["sinks"][0]):  # off the cam_box nodes
        stage["placement"] = {"resources": {"gpu_box": 0.1}}
    cfg.write_text(json.dumps(data))
    run_removing_node(cfg, ray_cluster, nodes, "source", after_events=20)
    stages = assert_accounted(tmp_path / "m.json", None)
    source = stages["source"]
    assert source["frames_in"] > 300  # the new start read its 300 frames too
    seqs = [e["seq"] for e in read_events(tmp_path / "e.jsonl")]
    assert seqs == sorted(set(seqs))  # unique and increasing across the restart
    assert seqs[-1] + 1 >= source["frames_out"]  # numbered on above the old start's numbers
    for name in ("detector", "classifier", "sink-0-jsonl"):  # not the new start's first 20+ frames
        assert stages[name]["dropped"] <= 5, stages


def test_two_cameras_keep_frames_on_their_nodes_and_send_faces_to_the_classifier(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """Two sources pinned to two nodes (a custom resource, a node label), detector workers placed beside
    them, the classifier on the gpu_box node: only face patches reach it (sinks need no
    pixels), and it labels the faces as the local run does."""
    # one camera's node is found by a custom resource, the other's by a node label
    cams = {
        "lobby": ("liveportrait_d3.mp4", {"resources": {"cam_a": 1}}),
        "desk": ("fer_woman2.mp4", {"labels": {"site": "desk"}}),
    }
    nodes = {
        "lobby": ray_cluster.local.add_node(num_cpus=1, resources={"cam_a": 1}),
        "desk": ray_cluster.local.add_node(num_cpus=1, labels={"site": "desk"}),
    }

    def write(folder: Path, runner: dict[str, Any]) -> Path:
        folder.mkdir()
        data = {
            "pipeline": {"status": False, "metrics_file": str(folder / "m.json"), **runner},
            "sources": [
                {
                    "type": "video",
                    "uri": str(DATA / "videos" / clip),
                    "stream": stream,
                    "max_frames": 30,
                    "placement": where,
                }
                for stream, (clip, where) in cams.items()
            ],  # fmt: skip
            "detector": {"type": "haar", "workers": 2},
            "classifier": {"type": "fer", "placement": {"resources": {"gpu_box": 1}}},
            "tracking": {"detect_every": 3},
            "sinks": [{"type": "jsonl", "path": str(folder / "e.jsonl")}],
        }
        (folder / "p.yaml").write_text(json.dumps(data))
        return folder / "p.yaml"

    local = run_cli("run", str(write(tmp_path / "local", {})), "--no-status", timeout=300)
    assert local.returncode == 0, local.stderr
    cfg = write(tmp_path / "ray", {"runner": "ray", "ray": {"address": ray_cluster.address}})
    res = run_cli("run", str(cfg), "--no-status", timeout=400, env=ray_cluster.env)
    assert res.returncode == 0, res.stderr
    placed = placement(res.stderr)
    source_node = {stream: placed[f"source-{stream}"][1] for stream in cams}
    assert source_node == {s: node[:8] for s, node in nodes.items()}
    assert {placed["detector[0]"][1], placed["detector[1]"][1]} == set(source_node.values())
    assert placed["classifier"][1] == ray_cluster.worker[:8]
    stages = json.loads((tmp_path / "ray" / "m.json").read_text())
    local_stages = json.loads((tmp_path / "local" / "m.json").read_text())
    per_frame = stages["detector"]["bytes_out"] / stages["detector"]["frames_out"]
    assert per_frame < local_stages["detector"]["bytes_out"] / local_stages["detector"]["frames_out"] / 5
    assert stages["sink-0-jsonl"]["frames_in"] == 60

    def labels(path: Path) -> dict[tuple[str, int], list[str]]:
        return {
            (e["stream"], e["seq"]): [f["emotion"]["label"] for f in e["faces"]] for e in read_events(path)
        }

    got, want = labels(tmp_path / "ray" / "e.jsonl"), labels(tmp_path / "local" / "e.jsonl")
    assert got.keys() == want.keys()
    same = sum(got[k] == want[k] for k in want)
    assert same >= 0.95 * len(want), (same, len(want))


def test_a_stage_no_node_can_take_ends_the_run_naming_it(ray_cluster: RayCluster, tmp_path: Path) -> None:
    cfg = pipeline(tmp_path, ray_cluster, {"placement": {"resources": {"tpu_pod": 2}, "num_cpus": 1}})
    res = run_cli("run", str(cfg), "--no-status", timeout=120, env=ray_cluster.env)
    assert res.returncode != 0
    assert "stage 'classifier' cannot be placed" in res.stderr and "tpu_pod: 2" in res.stderr, res.stderr
    assert not (tmp_path / "e.jsonl").exists()


def _ray_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    ray_bin = Path(sys.executable).with_name("ray")
    return subprocess.run(
        [str(ray_bin), *args], capture_output=True, text=True, timeout=180, env={**os.environ, **env}
    )


def test_the_cli_runs_on_a_cluster_started_with_ray_start(tmp_path: Path) -> None:
    """``ray start --head`` on 127.0.0.2 and a worker on 127.0.0.3 (token auth), then
    ``vidaffect run --set pipeline.ray.address=127.0.0.2:PORT``; every Ray process is ended by
    PID."""
    home = Path(tempfile.mkdtemp(prefix="vr-"))
    env = ray_env(home)
    del env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]  # 0 would refuse a second `ray start`; .2/.3 stay as given
    head_dir, worker_dir = home / "head", home / "worker"
    port = 6379 + secrets.randbelow(2000)
    try:
        head = _ray_cli(
            "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}", "--num-cpus=2",
            "--include-dashboard=false", f"--temp-dir={head_dir}", "--disable-usage-stats", env=env,
        )  # fmt: skip
        assert head.returncode == 0, head.stderr
        worker = _ray_cli(
            "start", f"--address=127.0.0.2:{port}", "--node-ip-address=127.0.0.3", "--num-cpus=2",
            '--resources={"gpu_box": 1}', f"--temp-dir={worker_dir}", env=env,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr
        cfg = pipeline(tmp_path, None, {"placement": {"resources": {"gpu_box": 1}}}, max_frames=20)
        res = run_cli(
            "run", str(cfg), "--no-status", "--set", "pipeline.runner=ray",
            "--set", f"pipeline.ray.address=127.0.0.2:{port}", timeout=400, env=env,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        placed = placement(res.stderr)
        assert placed["classifier"][0] == "127.0.0.3" and placed["source"][0] in ("127.0.0.2", "127.0.0.3")
        assert len(read_events(tmp_path / "e.jsonl")) == 20
    finally:
        kill_pids(processes_of(env))
        shutil.rmtree(home, ignore_errors=True)


def test_the_shipped_video_pipeline_gives_the_same_frames_and_events_on_ray(tmp_path: Path) -> None:
    """``vidaffect run configs/video.yaml --set pipeline.runner=ray`` (a one-machine cluster
    for the run) writes the local runner's events and as many video frames."""
    from pipeline_helpers import REPO, video_frames

    home = Path(tempfile.mkdtemp(prefix="vr-"))
    env = ray_env(home)
    outs = {}
    try:
        for runner in ("local", "ray"):
            out = tmp_path / runner
            res = run_cli(
                "run", str(REPO / "configs" / "video.yaml"), "--no-status",
                "--set", f"pipeline.runner={runner}", "--set", "pipeline.ray.address=local",
                "--set", "source.max_frames=30", "--set", f"sinks.0.path={out}/a.mp4",
                "--set", f"sinks.1.path={out}/e.jsonl", "--set", "sinks.2.endpoint=tcp://127.0.0.1:*",
                timeout=400, env=env,
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
            outs[runner] = out
        assert "placement:" in res.stderr
        assert event_keys(outs["ray"] / "e.jsonl") == event_keys(outs["local"] / "e.jsonl")
        assert len(read_events(outs["ray"] / "e.jsonl")) == 30
        assert video_frames(outs["ray"] / "a.mp4")[0] == video_frames(outs["local"] / "a.mp4")[0] == 30
    finally:
        kill_pids(processes_of(env))
        shutil.rmtree(home, ignore_errors=True)
