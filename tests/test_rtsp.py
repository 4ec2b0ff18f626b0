"""A real RTSP server on 127.0.0.1 (GStreamer, vidaffect/testing/rtsp_server.py): streaming, reconnects."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import read_events, run_cli, start_run, wait_for, write_config

from vidaffect.events.build import load_event_schema
from vidaffect.runtime.transport import free_tcp_port
from vidaffect.testing.rtsp import INSTALL_HINT, RtspServer, has_gst_rtsp
from vidaffect_plugins.capture import StreamSource

CLIP = DATA / "videos" / "liveportrait_d3.mp4"  # 12 s, 30 fps, H.264

NEEDS_RTSP = pytest.mark.skipif(
    not has_gst_rtsp(), reason=f"needs GStreamer's RTSP server for /usr/bin/python3: {INSTALL_HINT}"
)
pytestmark = pytest.mark.slow


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    with RtspServer(CLIP, free_tcp_port()) as server:
        yield server


def count_lines(path: Path, kind: str) -> int:
    return len(read_events(path, kind)) if path.exists() else 0


@NEEDS_DATA
@NEEDS_RTSP
def test_pipeline_on_a_real_rtsp_stream(tmp_path: Path, rtsp_server: RtspServer) -> None:
    events, metrics = tmp_path / "events.jsonl", tmp_path / "metrics.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics), "stream_id": "door"},
            "source": {"type": "stream", "uri": rtsp_server.url, "max_frames": 240},
            "detector": {"type": "mtcnn"},
            "classifier": {"type": "fer"},
            "tracking": {"detect_every": 5},
            "sinks": [{"type": "jsonl", "path": str(events)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=300)
    assert proc.returncode == 0, proc.stderr
    frames = read_events(events)
    source = json.loads(metrics.read_text())["source"]
    assert source["frames_in"] == 240
    assert source["frames_out"] + source["dropped"] == 240  # every captured frame accounted for
    assert len(frames) == source["frames_out"] >= 10  # a busy machine drops more, never queues
    assert sum(bool(e["faces"]) for e in frames) >= 0.75 * len(frames)
    assert {f["frame_size"] == [512, 512] for f in frames} == {True}
    assert {f["pts_ms"] for f in frames} == {None}  # a live stream's frames are timed by capture


@NEEDS_DATA
@NEEDS_RTSP
def test_source_reconnects_after_the_server_restarts(tmp_path: Path, rtsp_server: RtspServer) -> None:
    events, metrics = tmp_path / "events.jsonl", tmp_path / "metrics.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics), "stream_id": "door"},
            "source": {
                "type": "stream",
                "uri": rtsp_server.url,
                "reconnect_backoff_s": 0.2,
                "reconnect_max_backoff_s": 1.0,
                "open_timeout_ms": 2000,
                "read_timeout_ms": 2000,
                "outage_every_s": 1.0,
            },
            "sinks": [{"type": "jsonl", "path": str(events)}],
        },
    )
    run = start_run(cfg)
    try:
        wait_for(lambda: count_lines(events, "frame") >= 30, "frames before the break")
        rtsp_server.kill()
        # the outage is published while it lasts: at once, then every outage_every_s
        wait_for(lambda: count_lines(events, "outage") >= 3, "outage events during the break", timeout=30)
        assert run.poll() is None, "the pipeline exited while its source was reconnecting"
        before = count_lines(events, "frame")
        rtsp_server.start()
        wait_for(
            lambda: count_lines(events, "gap") >= 1 and count_lines(events, "frame") > before + 30,
            "frames after the reconnect",
            timeout=60,
        )
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    (gap,) = read_events(events, "gap")
    assert gap["gap_s"] >= 2.0 and gap["reconnects"] == 1 and gap["attempts"] >= 1
    seqs = [e["seq"] for e in read_events(events)]
    assert seqs == list(range(len(seqs)))  # numbering goes on across the gap, nothing lost
    outages = read_events(events, "outage")
    assert {o["seq"] for o in outages} == {gap["seq"]}  # the number of the next frame
    downs = [o["down_s"] for o in outages]
    assert downs == sorted(downs) and downs[0] < 0.5 and downs[-1] <= gap["gap_s"]  # the first at once
    assert all(b - a >= 0.9 for a, b in zip(downs, downs[1:]))  # every outage_every_s, not more often
    assert outages[0]["ts_capture_ns"] == read_events(events)[gap["seq"] - 1]["ts_capture_ns"]
    schema = load_event_schema()
    for o in outages:
        jsonschema.validate(o, schema)
    source = json.loads(metrics.read_text())["source"]
    assert source["reconnects"] == 1 and source["gap_s"] >= 2.0 and source["down"] == 0


@NEEDS_RTSP
def test_unreachable_stream_fails_after_its_attempts(tmp_path: Path) -> None:
    url = f"rtsp://127.0.0.1:{free_tcp_port()}/stream"
    cfg = write_config(
        tmp_path,
        {
            "source": {
                "type": "stream",
                "uri": url,
                "open_attempts": 2,
                "open_timeout_ms": 1000,
                "reconnect_backoff_s": 0.2,
            },
            "sinks": [{"type": "jsonl", "path": str(tmp_path / "e.jsonl")}],
        },
    )
    t0 = time.monotonic()
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 1
    assert url in proc.stderr and "after 2 attempts" in proc.stderr
    assert f"nothing answers at 127.0.0.1:{url.split(':')[2].split('/')[0]}" in proc.stderr
    assert "low_delay" not in proc.stderr  # the probing hint is for servers that do answer
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 60


@NEEDS_DATA
@NEEDS_RTSP
def test_low_delay_stream_gives_the_clip_frames_exactly_in_order(rtsp_server: RtspServer) -> None:
    """Skipping FFmpeg's probe (low_delay, the default) must not cost frames or quality."""
    source = StreamSource(StreamSource.Config(uri=rtsp_server.url))
    assert "probesize;32" in source.ffmpeg_options()
    source.open()
    try:
        got = [source.read() for _ in range(60)]
    finally:
        source.close()
    cap = cv2.VideoCapture(str(CLIP))
    expected = [cap.read()[1] for _ in range(60)]
    cap.release()
    assert all(item is not None and item[1] is None for item in got)
    assert all(np.array_equal(item[0], ref) for item, ref in zip(got, expected))


@NEEDS_DATA
@NEEDS_RTSP
def test_a_stream_that_does_not_come_back_ends_the_run_with_an_error(
    tmp_path: Path, rtsp_server: RtspServer
) -> None:
    """reconnect_attempts used up: the run says so and exits non-zero (it used to end as if the
    stream had simply finished, exit 0), with what was written finalised."""
    events = tmp_path / "events.jsonl"
    cfg = write_config(
        tmp_path,
        {
            "source": {
                "type": "stream",
                "uri": rtsp_server.url,
                "reconnect_backoff_s": 0.2,
                "reconnect_max_backoff_s": 0.5,
                "reconnect_attempts": 2,
                "open_timeout_ms": 1000,
                "read_timeout_ms": 1000,
            },
            "sinks": [{"type": "jsonl", "path": str(events)}],
        },
    )
    run = start_run(cfg)
    try:
        wait_for(lambda: count_lines(events, "frame") >= 20, "frames before the break")
        rtsp_server.kill()
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 1, err
    assert f"{rtsp_server.url} broke and did not come back after 2 reconnect attempts" in err
    assert "Traceback" not in err
    assert [e["seq"] for e in read_events(events)][:20] == list(range(20))


@NEEDS_DATA
@NEEDS_RTSP
def test_frames_buffered_while_models_load_are_not_passed_on(tmp_path: Path, rtsp_server: RtspServer) -> None:
    """A stage that takes 4 s to load: the RTSP frames of those 4 s wait in FFmpeg's and the
    kernel's buffers. They must not go out as fresh frames (in a burst, faster than the
    stream's 30 fps): the source opens the stream again once every stage is ready."""
    events, metrics = tmp_path / "events.jsonl", tmp_path / "metrics.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics), "stream_id": "door"},
            "source": {"type": "stream", "uri": rtsp_server.url, "max_frames": 60},
            "sinks": [
                {"type": "jsonl", "path": str(events)},
                {"type": "slow", "delay_s": 0, "open_delay_s": 4.0},
            ],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 0, proc.stderr
    frames = read_events(events)
    span_s = (frames[-1]["ts_capture_ns"] - frames[0]["ts_capture_ns"]) / 1e9
    assert span_s >= 1.5  # 60 frames read at the stream's pace (2 s at 30 fps), not a backlog
    source = json.loads(metrics.read_text())["source"]
    assert source["frames_in"] == 60 and source["frames_out"] + source["dropped"] == 60
