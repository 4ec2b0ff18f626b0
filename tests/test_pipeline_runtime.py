"""The runtime with real processes and sockets: events, signals, errors, fan-out, crashes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import (
    clip_frames,
    line_count,
    read_events,
    run_cli,
    start_run,
    video_frames,
    wait_for,
    write_config,
)

from vidaffect.events.subscribe import iter_events
from vidaffect.runtime.stage import REPORT_EVERY_S
from vidaffect.runtime.transport import free_tcp_port

CLIP = DATA / "videos" / "liveportrait_d0.mp4"


@pytest.mark.slow
@NEEDS_DATA
def test_subscriber_started_before_run_receives_events(tmp_path: Path) -> None:
    port = free_tcp_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    received: list[tuple[str, dict]] = []

    def subscribe() -> None:
        for item in iter_events(endpoint, "clip", timeout_ms=120_000):
            received.append(item)
            if item[1]["seq"] >= 20:
                return

    sub = threading.Thread(target=subscribe)
    sub.start()
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"stream_id": "clip"},
            "source": {"type": "video", "uri": str(CLIP)},
            "detector": {"type": "mtcnn"},
            "classifier": {"type": "fer"},
            "sinks": [{"type": "zmq_events", "endpoint": endpoint}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status")
    sub.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert received, "no event arrived"
    topics = {t for t, _ in received}
    assert topics == {"clip"}
    seqs = [e["seq"] for _, e in received]
    assert seqs == sorted(seqs) and seqs[-1] >= 20
    assert any(e["faces"] and e["faces"][0]["emotion"] for _, e in received)


@pytest.mark.slow
@NEEDS_DATA
def test_sigint_mid_run_leaves_playable_video(tmp_path: Path) -> None:
    out = tmp_path / "cut.mp4"
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(DATA / "videos" / "liveportrait_d3.mp4")},
            "detector": {"type": "mtcnn"},
            "classifier": {"type": "fer"},
            "sinks": [
                {"type": "video", "path": str(out)},
                {"type": "record", "path": str(tmp_path / "r.txt")},
            ],
        },
    )
    proc = start_run(cfg)
    record = tmp_path / "r.txt"
    wait_for(lambda: line_count(record) >= 15, "15 frames")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted" in err
    n, size = video_frames(out)
    assert 15 <= n < 354 and size == (512, 512)


@pytest.mark.slow
def test_bad_yaml_exits_nonzero_naming_key(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(CLIP)},
            "detector": {"type": "mtcnn", "min_face_sise": 30},
            "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
        },
    )
    proc = run_cli("run", str(cfg))
    assert proc.returncode != 0
    assert "stage 'detector' › min_face_sise: unknown key (did you mean 'min_face_size'?)" in proc.stderr
    assert str(cfg) in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_missing_video_exits_nonzero_with_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    proc = run_cli("run", "configs/video.yaml", f"--set=source.uri={missing}")
    assert proc.returncode != 0
    assert f"video file not found: {missing}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@NEEDS_DATA
def test_two_classifier_workers_keep_frame_order(tmp_path: Path) -> None:
    jsonl = tmp_path / "e.jsonl"
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(CLIP)},
            "detector": {"type": "mtcnn", "workers": 2},
            "classifier": {"type": "fer", "workers": 2},
            "sinks": [{"type": "jsonl", "path": str(jsonl)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status")
    assert proc.returncode == 0, proc.stderr
    seqs = [e["seq"] for e in read_events(jsonl)]
    assert seqs == list(range(video_frames(CLIP)[0]))


@pytest.mark.slow
@NEEDS_DATA
def test_crashed_stage_reported_with_traceback_and_pipeline_stops(tmp_path: Path) -> None:
    out = tmp_path / "v.mp4"
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(CLIP)},
            "detector": {"type": "crash_after", "frames": 10},
            "sinks": [{"type": "video", "path": str(out)}],
        },
    )
    t0 = time.monotonic()
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 1
    assert "stage detector failed: RuntimeError: injected failure after 10 frames" in proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert time.monotonic() - t0 < 90
    n, _ = video_frames(out)
    assert 1 <= n <= 10  # a finalised, playable file with the frames that got through


@pytest.mark.slow
@NEEDS_DATA
def test_restart_policy_restarts_crashed_stage(tmp_path: Path) -> None:
    record = tmp_path / "r.txt"
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(CLIP)},
            "detector": {"type": "crash_after", "frames": 30, "on_error": "restart", "max_restarts": 5},
            "sinks": [{"type": "record", "path": str(record)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "restarting, 1/5" in proc.stderr
    lines = record.read_text().splitlines()
    assert lines[-1].endswith("EOS")
    assert len(lines) - 1 >= 60  # frames kept flowing after the restarts


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["tcp"])
@NEEDS_DATA
def test_tcp_transport(tmp_path: Path, transport: str) -> None:
    record = tmp_path / "r.txt"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"transport": transport},
            "source": {"type": "video", "uri": str(CLIP)},
            "detector": {"type": "haar"},
            "sinks": [{"type": "record", "path": str(record)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status")
    assert proc.returncode == 0, proc.stderr
    seqs = [int(line.split()[1]) for line in record.read_text().splitlines()[:-1]]
    assert seqs == list(range(video_frames(CLIP)[0]))


def _running(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@NEEDS_DATA
def test_stages_exit_when_supervisor_is_killed(tmp_path: Path) -> None:
    record = tmp_path / "r.txt"
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "fake_camera", "uri": str(CLIP)},
            "detector": {"type": "haar"},
            "sinks": [{"type": "record", "path": str(record)}],
        },
    )
    proc = start_run(cfg)
    wait_for(lambda: line_count(record) > 10, "frames flowing")
    import psutil

    # the stage processes and the fork server they are forked from
    children = [str(c.pid) for c in psutil.Process(proc.pid).children(recursive=True)]
    assert len(children) >= 4
    proc.kill()
    proc.communicate()
    deadline = time.monotonic() + 20
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in children if _running(p)]
    assert not alive, "stage processes outlived their supervisor"


@pytest.mark.slow
def test_dead_camera_is_a_clear_error(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "webcam", "uri": "7"},
            "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 1
    assert "error: stage 'source': webcam source: cannot open camera 7" in proc.stderr
    assert "Traceback" not in proc.stderr and "loading models" not in proc.stderr  # before any stage
    assert not (tmp_path / "r.txt").exists()


def _stage_pid(supervisor_pid: int, endpoint_name: str) -> int | None:
    """The stage process of the supervisor that bound the ipc socket ``<endpoint_name>.sock``."""
    import psutil

    for child in psutil.Process(supervisor_pid).children(recursive=True):  # via the fork server
        try:
            if any(
                str(c.laddr).endswith(f"{endpoint_name}.sock") for c in child.net_connections(kind="unix")
            ):
                return child.pid
        except psutil.Error:
            continue
    return None


def _run_and_kill_detector(tmp_path: Path, on_error: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    record, metrics = tmp_path / "r.txt", tmp_path / "m.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics)},
            "source": {"type": "video", "uri": str(DATA / "videos" / "liveportrait_d3.mp4")},
            "detector": {"type": "haar", "on_error": on_error},
            "sinks": [{"type": "record", "path": str(record)}],
        },
    )
    proc = start_run(cfg)
    wait_for(lambda: line_count(record) > 40, "frames flowing")
    pid = _stage_pid(proc.pid, "detector-0")
    assert pid is not None, "detector process not found"
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), record, metrics


@pytest.mark.slow
@NEEDS_DATA
def test_sigkilled_stage_is_restarted_and_every_frame_accounted_for(tmp_path: Path) -> None:
    proc, record, metrics = _run_and_kill_detector(tmp_path, "restart")
    assert proc.returncode == 0, proc.stderr
    assert "stage detector failed: process exited with code -9" in proc.stderr
    lines = record.read_text().splitlines()
    assert lines[-1].endswith("EOS")
    seqs = [int(line.split()[1]) for line in lines[:-1]]
    assert seqs == sorted(set(seqs)) and seqs[-1] > 300  # in order, and the run went on
    stages = json.loads(metrics.read_text())
    sent = stages["source"]["frames_out"]
    lost = stages["sink-0-record"]["lost"]
    assert sent == 354 and len(seqs) + lost == sent  # delivered or counted as lost, never missing


@pytest.mark.slow
@NEEDS_DATA
def test_sigkilled_stage_with_stop_policy_stops_cleanly(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc, record, _ = _run_and_kill_detector(tmp_path, "stop")
    assert proc.returncode == 1
    assert "stage detector failed: process exited with code -9" in proc.stderr
    assert time.monotonic() - t0 < 120  # shutdown never hangs
    assert record.exists()


@pytest.mark.slow
@NEEDS_DATA
def test_truncated_video_is_a_clear_error(tmp_path: Path) -> None:
    clip = DATA / "videos" / "liveportrait_d3.mp4"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # index (moov) at the end is gone
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(cut)},
            "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 1
    assert f"cannot open {cut}" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) to fake a full disk")
@NEEDS_DATA
def test_full_disk_is_a_clear_error_and_the_video_is_finalised(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(CLIP)},
            "sinks": [{"type": "video", "path": str(video)}, {"type": "jsonl", "path": "/dev/full"}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 1
    assert "jsonl sink: cannot write /dev/full: No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert video_frames(video)[0] >= 1  # the other sink's file is still playable


@pytest.mark.slow
@NEEDS_DATA
def test_garbage_on_every_socket_is_dropped_and_counted(tmp_path: Path) -> None:
    import msgpack
    import psutil
    import zmq

    record, metrics = tmp_path / "r.txt", tmp_path / "m.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics)},
            "source": {"type": "fake_camera", "uri": str(CLIP), "max_frames": 250},  # 10 s at 25 fps
            "detector": {"type": "haar"},
            "sinks": [{"type": "record", "path": str(record)}],
        },
    )
    proc = start_run(cfg)
    wait_for(lambda: line_count(record) > 3, "frames flowing")
    sup = psutil.Process(proc.pid)
    paths = {
        str(c.laddr)
        for p in [sup, *sup.children(recursive=True)]
        for c in p.net_connections(kind="unix")
        if str(c.laddr).endswith(".sock")
    }
    assert any(p.endswith("detector-0.sock") for p in paths) and any(
        p.endswith("updates.sock") for p in paths
    )
    garbage = [
        [b"not msgpack at all"],
        [msgpack.packb({"v": 1, "kind": "frame", "stream": "cam0", "seq": "x"})],
        [msgpack.packb({"v": 99, "kind": "frame"}), b"\x00" * 10],
        [
            msgpack.packb(
                {
                    "v": 1,
                    "kind": "frame",
                    "stream": "cam0",
                    "seq": 5,
                    "ts_ns": 0,
                    "pts_ms": None,
                    "bufs": [{"dtype": "uint8", "shape": [4000, 4000, 3]}],
                    "meta": {},
                }
            ),
            b"\x00" * 12,
        ],
        [b"\xff" * 100000],
        [msgpack.packb([1, 2, 3])],
    ]
    ctx = zmq.Context()
    socks = []
    for path in sorted(paths):
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDTIMEO, 1000)
        sock.connect(f"ipc://{path}")
        socks.append(sock)  # kept open to the end: libzmq drops a message its receiving side
        for parts in garbage:  # had read but not yet queued when the sender disconnects
            try:
                sock.send_multipart(parts)
            except zmq.Again:  # not a PULL socket (e.g. the control PUB): nothing to inject
                break
    _, err = proc.communicate(timeout=120)
    for sock in socks:
        sock.close(linger=0)
    ctx.term()
    assert proc.returncode == 0, err
    lines = record.read_text().splitlines()
    assert lines[-1].endswith("EOS")
    seqs = [int(line.split()[1]) for line in lines[:-1]]
    assert seqs == sorted(set(seqs))
    stages = json.loads(metrics.read_text())
    assert stages["detector"]["malformed"] == len(garbage)  # every stage counted every message
    assert stages["sink-0-record"]["malformed"] == len(garbage)


def write_truncated_avi(path: Path, frames: int = 67, keep: float = 0.4) -> int:
    """An MJPEG AVI of ``frames`` frames cut to ``keep`` of its bytes: its header still
    announces every frame. Returns how many frames OpenCV can decode from the cut file."""
    import cv2
    import numpy as np

    full = path.with_name("full.avi")
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 3 * i, np.uint8))
    writer.release()
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    n = 0
    while cap.read()[0]:
        n += 1
    return n


@pytest.mark.slow
def test_a_video_cut_short_is_warned_about_and_its_missing_frames_counted(tmp_path: Path) -> None:
    cut = tmp_path / "cut.avi"
    readable = write_truncated_avi(cut)
    assert 0 < readable < 67
    metrics = tmp_path / "m.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics)},
            "source": {"type": "video", "uri": str(cut)},
            "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (
        f"warning: stage 'source': {cut} announced 67 frames but only {readable} could be decoded "
        f"({67 - readable} unreadable"
    ) in proc.stderr
    source = json.loads(metrics.read_text())["source"]
    assert (source["frames_in"], source["unreadable"]) == (readable, 67 - readable)
    assert line_count(tmp_path / "r.txt") == readable + 1  # and the EOS line


@NEEDS_DATA
def test_a_whole_video_has_no_unreadable_frames(tmp_path: Path) -> None:
    from vidaffect_plugins.capture import VideoFileSource

    src = VideoFileSource(VideoFileSource.Config(uri=str(CLIP), fps=10))  # subsampled, too
    src.open()
    while src.read() is not None:
        pass
    src.close()
    assert src.undelivered() == 0


@pytest.mark.slow
@NEEDS_DATA
@pytest.mark.parametrize(
    "signals",
    [[signal.SIGTERM], [signal.SIGINT], [signal.SIGINT, signal.SIGINT]],
    ids=["sigterm", "sigint", "sigint-twice"],
)
def test_every_frame_is_counted_when_a_live_run_is_stopped(tmp_path: Path, signals: list[int]) -> None:
    """A camera-paced run stopped mid-stream (drain, or abort on a second Ctrl-C): at every
    stage in == out + dropped, and along every hop out == next in + lost."""
    metrics, record = tmp_path / "metrics.json", tmp_path / "r.txt"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics)},
            "source": {"type": "fake_camera", "uri": str(CLIP), "max_frames": 5000, "resize": 128},
            "detector": {"type": "haar"},
            "sinks": [{"type": "slow", "delay_s": 0.05}, {"type": "record", "path": str(record)}],
        },
    )
    proc = start_run(cfg)
    try:
        wait_for(lambda: line_count(record) >= 40, "frames at the record sink")
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode in (0, 1), err
    stages = json.loads(metrics.read_text())
    for name, m in stages.items():
        assert m["frames_in"] == m["frames_out"] + m["dropped"], (name, m)
    source, det = stages["source"], stages["detector"]
    assert source["frames_in"] >= 40
    assert source["frames_out"] == det["frames_in"] + det["lost"]
    for sink in ("sink-0-slow", "sink-1-record"):
        assert det["frames_out"] == stages[sink]["frames_in"] + stages[sink]["lost"], (sink, stages)


def _fails_before_any_stage(tmp_path: Path, data: dict, message: str) -> None:
    """Run ``data``: it must fail in the launching process, naming the problem, before any
    stage starts (no "loading models", no stage table) and without creating output files."""
    outputs = tmp_path / "out"
    cfg = write_config(
        tmp_path,
        {
            **data,
            "sinks": [
                *data.get("sinks", []),
                {"type": "jsonl", "path": str(outputs / "e.jsonl")},
                {"type": "video", "path": str(outputs / "v.mp4")},
            ],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert (
        "loading models" not in proc.stderr
        and "stage  " not in proc.stderr
        and "Traceback" not in proc.stderr
    )
    assert not outputs.exists() or not any(outputs.iterdir())


@pytest.mark.slow
def test_a_file_with_no_readable_frame_fails_before_any_stage(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n" * 100)
    _fails_before_any_stage(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(fake)},
            "detector": {"type": "mtcnn"},
            "classifier": {"type": "fer"},
        },
        f"error: stage 'source': video source: cannot open {fake}",
    )


@pytest.mark.slow
def test_an_empty_photo_folder_fails_before_any_stage(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    _fails_before_any_stage(
        tmp_path,
        {"source": {"type": "images", "uri": str(photos)}},
        "error: stage 'source': images source: none of the 1 image files",
    )


@pytest.mark.slow
@NEEDS_DATA
def test_a_port_in_use_fails_before_any_stage(tmp_path: Path) -> None:
    import zmq

    ctx = zmq.Context()
    busy = ctx.socket(zmq.PUB)
    port = busy.bind_to_random_port("tcp://127.0.0.1")
    try:
        _fails_before_any_stage(
            tmp_path,
            {
                "source": {"type": "video", "uri": str(CLIP)},
                "sinks": [{"type": "zmq_events", "endpoint": f"tcp://127.0.0.1:{port}"}],
            },
            f"error: stage 'sink-0-zmq_events': zmq_events sink: cannot bind tcp://127.0.0.1:{port}: "
            "Address already in use (another vidaffect run, or another program, uses it)",
        )
        _fails_before_any_stage(
            tmp_path,
            {"pipeline": {"metrics_port": port}, "source": {"type": "video", "uri": str(CLIP)}},
            f"error: pipeline › metrics_port: cannot serve metrics on 127.0.0.1:{port}: Address already in use",
        )
    finally:
        busy.close(0)
        ctx.term()


@pytest.mark.slow
@NEEDS_DATA
def test_an_unwritable_output_folder_fails_before_any_stage(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _fails_before_any_stage(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(CLIP)},
            "sinks": [{"type": "images", "folder": str(blocker / "photos")}],
        },
        f"error: stage 'sink-0-images': images sink: cannot create folder {blocker}",
    )


@pytest.mark.slow
@NEEDS_DATA
def test_stages_exit_when_the_supervisor_is_killed_while_models_load(tmp_path: Path) -> None:
    """SIGKILL of `vidaffect run` during start-up (stages importing torch and loading MTCNN and
    the FER model): every process it started is gone within seconds, and the next run removes
    the run folder of ipc sockets the killed one left."""
    import tempfile

    import psutil

    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(CLIP)},
            "detector": {"type": "mtcnn"},
            "classifier": {"type": "fer"},
            "sinks": [{"type": "record", "path": str(tmp_path / "r.txt")}],
        },
    )
    before = set(Path(tempfile.gettempdir()).glob("vidaffect-*"))
    proc = start_run(cfg)
    sup = psutil.Process(proc.pid)
    wait_for(lambda: len(sup.children(recursive=True)) >= 5, "stage processes started", every=0.02)
    family = sup.children(recursive=True)
    assert not (tmp_path / "r.txt").exists()  # still starting: the sink has not opened yet
    left = [d for d in Path(tempfile.gettempdir()).glob("vidaffect-*") if d not in before]
    proc.kill()
    proc.communicate()
    t0 = time.monotonic()
    _, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, f"{len(alive)} processes outlived their supervisor"
    assert time.monotonic() - t0 < 10
    assert left and all(d.exists() for d in left)  # the killed run could not clean up
    quick = write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(CLIP), "max_frames": 2},
            "sinks": [{"type": "record", "path": str(tmp_path / "q.txt")}],
        },
    )
    assert run_cli("run", str(quick), "--no-status", timeout=120).returncode == 0
    assert not any(d.exists() for d in left)


@pytest.mark.slow
@NEEDS_DATA
def test_a_restarted_file_sink_keeps_what_it_wrote(tmp_path: Path) -> None:
    """SIGKILL of the jsonl and video sinks with on_error: restart: the JSONL goes on in the same
    file (from seq 0, whole lines), the video rolls to a part file, and the frames the killed
    sinks never wrote are counted as lost."""
    events, video, metrics = tmp_path / "e.jsonl", tmp_path / "v.mp4", tmp_path / "m.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics)},
            "source": {"type": "video", "uri": str(DATA / "videos" / "liveportrait_d3.mp4")},
            "detector": {"type": "haar"},
            "sinks": [
                {"type": "jsonl", "path": str(events), "on_error": "restart"},
                {"type": "video", "path": str(video), "on_error": "restart"},
            ],
        },
    )
    started = time.monotonic()
    proc = start_run(cfg)
    wait_for(lambda: line_count(events) > 150, "frames flowing")  # 5 s of video: 2 fragments
    for name in ("sink-0-jsonl-0", "sink-1-video-0"):
        pid = _stage_pid(proc.pid, name)
        assert pid is not None, f"{name} not found"
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    seqs = [e["seq"] for e in read_events(events)]
    total = clip_frames(DATA / "videos" / "liveportrait_d3.mp4")
    assert seqs[0] == 0 and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stages = json.loads(metrics.read_text())
    # every frame written once or counted lost; "lost" also holds what the killed worker did
    # after its last report (REPORT_EVERY_S of frames, twice the run's mean rate at most, plus
    # the frames queued at the high-water marks), which it may have written: an upper bound
    rate = total / (time.monotonic() - started)
    slack = math.ceil(2 * rate * REPORT_EVERY_S) + 8
    assert len(seqs) <= total <= len(seqs) + stages["sink-0-jsonl"]["lost"] <= total + slack
    parts = video_frames(video)[0] + video_frames(tmp_path / "v.part2.mp4")[0]
    assert parts + stages["sink-1-video"]["lost"] >= total - 60  # a fragment at most lost unseen
    assert video_frames(video)[0] >= 50  # the killed sink's file plays


@pytest.mark.slow
@NEEDS_DATA
def test_a_restarted_source_goes_on_at_once(tmp_path: Path) -> None:
    """SIGKILL of a camera source with on_error: restart: the new source numbers its frames on
    from the old one's, so the detector takes them at once (it used to drop every frame
    numbered below the old source's last as late, for as long as the old one had run)."""
    import psutil

    record, metrics = tmp_path / "r.txt", tmp_path / "m.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics)},
            "source": {"type": "fake_camera", "uri": str(CLIP), "resize": 64, "on_error": "restart"},
            "detector": {"type": "haar"},
            "sinks": [{"type": "record", "path": str(record)}],
        },
    )
    proc = start_run(cfg)
    try:
        wait_for(lambda: line_count(record) > 75, "frames flowing")  # 3 s of camera
        source = next(
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if any(f.path.endswith("source.seq") for f in p.open_files())
        )
        before = line_count(record)
        source.kill()
        wait_for(lambda: line_count(record) > before + 25, "frames after the restart", timeout=60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "stage source failed" in err and "(restarting, 1/3)" in err
    seqs = [int(line.split()[1]) for line in record.read_text().splitlines() if not line.endswith("EOS")]
    assert seqs == sorted(set(seqs))  # numbering went on, never back
    stages = json.loads(metrics.read_text())
    for name, m in stages.items():  # every frame counted, the late ones too
        assert m["frames_in"] == m["frames_out"] + m["dropped"], (name, m)
    det = stages["detector"]
    assert det["lost"] + det["dropped"] <= 3  # the killed source's last frames at most, not 3 s
