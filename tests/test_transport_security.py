"""The tcp transport against a hostile process on 127.0.0.1: CurveZMQ with per-run keys,
message size limits, ``meta`` validation, reports only from the run's own stages, and the
refusal of unauthenticated binds beyond loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import line_count, run_cli, start_run, wait_for, write_config

from vidaffect.config import load_config
from vidaffect.runtime.transport import free_tcp_port

CLIP = DATA / "videos" / "liveportrait_d0.mp4"  # 512x512, 78 frames at 25 fps

pytestmark = pytest.mark.slow

FORGER = r"""
import json, sys, time
import msgpack, zmq

ports, pid, only = json.loads(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
header = lambda seq, meta, shape: msgpack.packb({"v": 1, "kind": "frame", "stream": "cam0", "seq": seq,
    "ts_ns": time.time_ns(), "pts_ms": None, "bufs": [{"dtype": "uint8", "shape": shape}], "meta": meta})
forged = {
    "seq_1e9": [header(10**9, {}, [8, 8, 3]), b"\0" * 192],
    "face_without_score": [header(3, {"faces": [{"bbox": [1.0, 2.0, 30.0, 40.0]}]}, [8, 8, 3]), b"\0" * 192],
    "error_report": [msgpack.packb({"type": "error", "stage": "detector", "worker": 0, "pid": pid,
                                    "error": "forged", "traceback": ""})],
    "fake_counters": [msgpack.packb({"type": "metrics", "stage": "detector", "worker": 0, "pid": pid,
                                     "metrics": {"frames_in": 10**6}})],
    "two_mb": [header(4, {}, [1024, 683, 3]), b"\0" * (1024 * 683 * 3)],
}
ctx = zmq.Context()
delivered = {}
for port in ports:
    for name, parts in forged.items():
        if only and name not in only:
            continue
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDTIMEO, 200)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a completed connection (handshake)
        sock.setsockopt(zmq.LINGER, 500)
        sock.connect(f"tcp://127.0.0.1:{port}")
        try:
            sock.send_multipart(parts)
            delivered[f"{port}:{name}"] = True
        except zmq.Again:  # no peer accepted the connection
            delivered[f"{port}:{name}"] = False
        sock.close()
print(json.dumps(delivered))
"""


def _port_run(n: int) -> int:
    """A first port such that ``n`` ports from it were free a moment ago."""
    import socket

    for _ in range(50):
        base = free_tcp_port()
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise AssertionError("no run of free ports")


def _forge(tmp_path: Path, ports: list[int], pid: int, only: tuple[str, ...] = ()) -> dict[str, bool]:
    """Send the forged messages (``only`` these, when given) from another process to every
    port; returns which were handed to a peer."""
    script = tmp_path / "forger.py"
    script.write_text(FORGER)
    out = subprocess.run(
        [sys.executable, str(script), json.dumps(ports), str(pid), json.dumps(list(only))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def _live_config(tmp_path: Path, pipeline: dict, events: Path, metrics: Path) -> Path:
    return write_config(
        tmp_path,
        {
            "pipeline": {"transport": "tcp", "metrics_file": str(metrics), **pipeline},
            "source": {"type": "fake_camera", "uri": str(CLIP), "max_frames": 250},  # 10 s at 25 fps
            "detector": {"type": "haar"},
            "sinks": [{"type": "jsonl", "path": str(events)}],
        },
    )


@NEEDS_DATA
def test_a_process_without_the_run_key_gets_nothing_in(tmp_path: Path) -> None:
    """Per-run CurveZMQ: every forged message to every port of the run (control, report,
    detector input, sink input) fails the handshake; the run's figures are untouched and the
    refusals are counted and reported."""
    events, metrics = tmp_path / "events.jsonl", tmp_path / "m.json"
    base = _port_run(4)  # control, report, detector-0, sink-0 in that order
    proc = start_run(_live_config(tmp_path, {"port_base": base}, events, metrics))
    wait_for(lambda: line_count(events) > 3, "frames flowing")
    delivered = _forge(tmp_path, list(range(base, base + 4)), proc.pid)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert not any(delivered.values()), delivered  # nothing handed over on any port
    stages = json.loads(metrics.read_text())
    assert stages["detector"]["refused"] > 0 and stages["sink-0-jsonl"]["refused"] > 0
    assert "connections without the run's key were refused" in err
    seqs = [
        json.loads(line)["seq"]
        for line in events.read_text().splitlines()
        if json.loads(line).get("type") == "frame"
    ]
    assert seqs == sorted(set(seqs)) and max(seqs) < 250
    for name, m in stages.items():  # no counter was faked, every frame is accounted for
        assert m["frames_in"] == m["frames_out"] + m["dropped"], (name, m)
        assert m["malformed"] == 0, (name, m)
    assert stages["sink-0-jsonl"]["frames_out"] == len(seqs)
    assert stages["source"]["frames_out"] == stages["detector"]["frames_in"] + stages["detector"]["lost"]


@NEEDS_DATA
def test_without_auth_on_loopback_hostile_messages_are_dropped_and_counted(tmp_path: Path) -> None:
    """``auth: none`` (loopback only): a face without a score never reaches the sink (meta
    validation), a message part above ``max_message_mb`` is refused unread, and reports from
    processes the run did not start are ignored."""
    events, metrics = tmp_path / "events.jsonl", tmp_path / "m.json"
    base = _port_run(4)
    proc = start_run(
        _live_config(tmp_path, {"port_base": base, "auth": "none", "max_message_mb": 1}, events, metrics)
    )
    wait_for(lambda: line_count(events) > 3, "frames flowing")
    # a report with a pid the run did not start, a face without a score, a 2 MB part
    delivered = _forge(
        tmp_path, [base + 1, base + 3], 1, ("error_report", "fake_counters", "face_without_score", "two_mb")
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err  # the forged error report did not abort the run
    assert delivered[f"{base + 3}:face_without_score"] and delivered[f"{base + 1}:error_report"]
    stages = json.loads(metrics.read_text())
    sink = stages["sink-0-jsonl"]
    # at the sink: the face without a score and the two reports (not frames) are malformed;
    # the 2 MB part was refused unread
    assert sink["malformed"] == 3
    assert "updates from processes this run did not start were ignored" in err
    assert stages["detector"]["frames_in"] > 0 and stages["detector"]["frames_in"] < 10**6
    faces = [f for line in events.read_text().splitlines() for f in json.loads(line).get("faces", [])]
    assert all("score" in f for f in faces)


@pytest.mark.parametrize(
    ("pipeline", "where"),
    [
        ({"transport": "tcp", "auth": "none", "host": "0.0.0.0"}, "pipeline › host: "),
        ({"metrics_port": 9100, "metrics_host": "0.0.0.0"}, "pipeline › metrics_host: "),
    ],
)
def test_an_unauthenticated_bind_beyond_loopback_is_refused(
    tmp_path: Path, pipeline: dict, where: str
) -> None:
    cfg = write_config(
        tmp_path,
        {
            "pipeline": pipeline,
            "source": {"type": "video", "uri": str(CLIP)},
            "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status")
    assert proc.returncode != 0
    assert where in proc.stderr and "insecure: true" in proc.stderr
    ok = write_config(
        tmp_path,
        {
            "pipeline": {**pipeline, "insecure": True},
            "source": {"type": "video", "uri": str(CLIP)},
            "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
        },
    )
    assert load_config(ok).engine.insecure  # said explicitly: accepted


def test_events_beyond_loopback_need_curve_or_insecure(tmp_path: Path) -> None:
    sink = {"type": "zmq_events", "endpoint": "tcp://0.0.0.0:5599"}
    cfg = write_config(tmp_path, {"source": {"type": "video", "uri": str(CLIP)}, "sinks": [sink]})
    proc = run_cli("run", str(cfg), "--no-status")
    assert proc.returncode != 0 and "lets other hosts subscribe" in proc.stderr
    cfg = write_config(
        tmp_path, {"source": {"type": "video", "uri": str(CLIP)}, "sinks": [{**sink, "insecure": True}]}
    )
    assert load_config(cfg).sinks[0].plugin.insecure


@NEEDS_DATA
def test_a_configured_key_pair_is_used_by_every_stage(tmp_path: Path) -> None:
    """Across hosts the stages share a key file from ``vidaffect keys``."""
    assert run_cli("keys", str(tmp_path / "keys"), "--name", "run").returncode == 0
    record = tmp_path / "r.txt"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"transport": "tcp", "curve_secret_key": str(tmp_path / "keys" / "run.key_secret")},
            "source": {"type": "video", "uri": str(CLIP)},
            "detector": {"type": "haar"},
            "sinks": [{"type": "record", "path": str(record)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status")
    assert proc.returncode == 0, proc.stderr
    assert [int(line.split()[1]) for line in record.read_text().splitlines()[:-1]] == list(range(78))
    bad = write_config(
        tmp_path,
        {
            "pipeline": {"transport": "tcp", "curve_secret_key": str(tmp_path / "keys" / "run.key")},
            "source": {"type": "video", "uri": str(CLIP)},
            "sinks": [{"type": "record", "path": str(record)}],
        },
    )
    proc = run_cli("run", str(bad), "--no-status")
    assert proc.returncode != 0 and "pipeline › curve_secret_key: " in proc.stderr


@NEEDS_DATA
def test_a_frame_above_the_message_limit_is_a_clear_error(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"max_message_mb": 0.5},
            "source": {"type": "video", "uri": str(CLIP)},
            "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status")
    assert proc.returncode == 1
    assert "a 512x512 frame is 0.8 MB, above pipeline › max_message_mb (0.5 MB)" in proc.stderr
