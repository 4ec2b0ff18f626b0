"""Live sources: drop-oldest keeps latency bounded; metrics are served while running."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import REPO, run_cli, start_run, vidaffect_cmd, wait_for, write_config

from vidaffect.runtime.transport import free_tcp_port

CLIP = DATA / "videos" / "liveportrait_d0.mp4"

pytestmark = pytest.mark.slow


@NEEDS_DATA
@pytest.mark.parametrize("resize", [None, 64])
def test_slow_pipeline_drops_oldest_and_latency_stays_bounded(tmp_path: Path, resize: int | None) -> None:
    # 64 px frames (12 KiB) fit in the kernel's socket buffer: the last frame and EOS wait
    # there at the end, and are lost if the source disconnects before the sink has read them
    metrics = tmp_path / "metrics.json"
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        json.dumps(
            {
                "pipeline": {"metrics_file": str(metrics)},
                "source": {
                    "type": "fake_camera",
                    "uri": str(CLIP),
                    "max_frames": 100,  # 4 s at 25 fps
                    "resize": resize,
                },
                "sinks": [{"type": "slow", "delay_s": 0.1}],
            }
        )
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(metrics.read_text())
    source, slow = stages["source"], stages["sink-0-slow"]
    assert source["frames_in"] == 100
    assert source["dropped"] >= 30  # the sink manages ~10 fps of the 25
    assert source["frames_out"] + source["dropped"] == 100
    assert slow["frames_out"] == source["frames_out"] and slow["lost"] == 0  # what was sent was delivered
    assert slow["latency_p95_ms"] < 2000  # a few frames of queue (high-water marks), not the 4 s clip


@NEEDS_DATA
def test_slow_sink_does_not_hold_up_the_other_sinks(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    record = tmp_path / "r.txt"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics)},
            # 4 s at 25 fps; small frames keep the detector well ahead of 25 fps on a busy machine,
            # so the sinks, not the detector, decide what is lost
            "source": {"type": "fake_camera", "uri": str(CLIP), "max_frames": 100, "resize": 128},
            "detector": {"type": "haar"},
            "sinks": [{"type": "slow", "delay_s": 1.0}, {"type": "record", "path": str(record)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(metrics.read_text())
    source, det = stages["source"], stages["detector"]
    slow, rec = stages["sink-0-slow"], stages["sink-1-record"]
    assert rec["frames_out"] >= 0.8 * source["frames_out"]  # the fast sink kept up
    assert slow["frames_out"] < rec["frames_out"]  # the slow one (1 fps) missed frames
    assert slow["frames_out"] + slow["lost"] == det["frames_out"]  # ... each one counted
    assert slow["lost"] > 0 and det["skipped"] == slow["lost"] + rec["lost"]  # sender and sinks agree
    assert rec["frames_out"] + rec["lost"] == det["frames_out"]
    seqs = [int(line.split()[1]) for line in record.read_text().splitlines()[:-1]]
    assert seqs == sorted(set(seqs))


@NEEDS_DATA
def test_prometheus_metrics_served_during_run(tmp_path: Path) -> None:
    port = free_tcp_port()
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        json.dumps(
            {
                "pipeline": {"metrics_port": port, "name": "promtest"},
                "source": {"type": "fake_camera", "uri": str(CLIP), "max_frames": 150},
                "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
            }
        )
    )
    proc = start_run(cfg)
    body = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and 'stage="source"' not in body:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            time.sleep(0.3)
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert 'vidaffect_stage_frames_out{pipeline="promtest",stage="source"}' in body


@NEEDS_DATA
def test_events_command_prints_json(tmp_path: Path) -> None:
    import zmq

    port = free_tcp_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    sub = subprocess.Popen(
        vidaffect_cmd("events", endpoint, "--count", "5"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        json.dumps(
            {
                "source": {"type": "video", "uri": str(CLIP)},
                "detector": {"type": "haar"},
                "sinks": [{"type": "zmq_events", "endpoint": endpoint}],
            }
        )
    )
    # PUB/SUB delivers only to joined subscribers: until the subscriber has started and sent its
    # subscription, an XPUB socket stands in for the run's publisher on its port
    probe = zmq.Context.instance().socket(zmq.XPUB)
    probe.setsockopt(zmq.LINGER, 0)
    probe.bind(endpoint)

    def subscribed() -> bool:
        assert sub.poll() is None, sub.communicate()  # the subscriber exited
        return bool(probe.poll(0))

    try:
        wait_for(subscribed, "`vidaffect events` to subscribe", timeout=60)
        assert probe.recv() == b"\x01"  # a subscription to every stream
    except BaseException:
        sub.kill()
        raise
    finally:
        probe.close()
    proc = run_cli("run", str(cfg), "--no-status")
    out, _ = sub.communicate(timeout=60)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 5
    assert all(json.loads(line)["type"] == "frame" for line in lines)


def test_events_command_errors_name_the_problem(tmp_path: Path) -> None:
    bad = run_cli("events", "foo", "--count", "1")
    assert bad.returncode == 1 and "cannot subscribe to 'foo'" in bad.stderr
    assert run_cli("keys", str(tmp_path), "--name", "alice").returncode == 0
    public, secret = str(tmp_path / "alice.key"), str(tmp_path / "alice.key_secret")
    wrong = run_cli("events", "--curve-secret-key", public, "--curve-server-key", public, "--count", "1")
    assert wrong.returncode == 1 and "holds no secret key (give the NAME.key_secret" in wrong.stderr
    half = run_cli("events", "--curve-secret-key", secret, "--count", "1")
    assert half.returncode == 2 and "--curve-secret-key and --curve-server-key go together" in half.stderr
    assert "Traceback" not in bad.stderr + wrong.stderr + half.stderr


@NEEDS_DATA
def test_subscriber_that_stops_reading_never_slows_the_pipeline(tmp_path: Path) -> None:
    import zmq

    port = free_tcp_port()
    metrics = tmp_path / "metrics.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics), "stream_id": "cam0"},
            "source": {"type": "fake_camera", "uri": str(CLIP), "max_frames": 100},
            "sinks": [{"type": "zmq_events", "endpoint": f"tcp://127.0.0.1:{port}", "hwm": 5}],
        },
    )
    stuck = zmq.Context.instance().socket(zmq.SUB)
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(f"tcp://127.0.0.1:{port}")  # connects, subscribes, never reads
    try:
        t0 = time.monotonic()
        proc = run_cli("run", str(cfg), "--no-status", timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        stuck.close(linger=0)
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(metrics.read_text())
    source, pub = stages["source"], stages["sink-0-zmq_events"]
    assert pub["frames_out"] == source["frames_out"] and pub["lost"] == 0
    assert source["dropped"] <= 10  # the publisher kept pace with the 25 fps camera
    assert elapsed < 60
