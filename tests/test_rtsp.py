"""A real RTSP server on 127.0.0.1 (GStreamer, tools/rtsp_server.py): streaming, reconnects."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import REPO, read_events, run_cli, start_run, wait_for, write_config

from vidaffect.runtime.transport import free_tcp_port

CLIP = DATA / "videos" / "liveportrait_d3.mp4"  # 12 s, 30 fps, H.264
SYSTEM_PYTHON = "/usr/bin/python3"


def _has_gst_rtsp() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0 \
        and shutil.which("gst-inspect-1.0") is not None


NEEDS_RTSP = pytest.mark.skipif(
    not _has_gst_rtsp(),
    reason="needs GStreamer's RTSP server for /usr/bin/python3 (apt-get install python3-gi "
           "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad "
           "gstreamer1.0-tools; .ci/run installs them)",
)


class RtspServer:
    """tools/rtsp_server.py serving a clip on a port of 127.0.0.1; restartable."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip, self.port = clip, port
        self.url = f"rtsp://127.0.0.1:{port}/stream"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(REPO / "tools" / "rtsp_server.py"), str(self.clip), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("ready"), f"server did not start: {line} {self.proc.stderr.read()}"

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.communicate(timeout=10)  # reap it and close its pipes


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    server = RtspServer(CLIP, free_tcp_port())
    server.start()
    yield server
    server.kill()


def count_lines(path: Path, kind: str) -> int:
    return len(read_events(path, kind)) if path.exists() else 0


@NEEDS_DATA
@NEEDS_RTSP
def test_pipeline_on_a_real_rtsp_stream(tmp_path: Path, rtsp_server: RtspServer) -> None:
    events, metrics = tmp_path / "events.jsonl", tmp_path / "metrics.json"
    cfg = write_config(tmp_path, {
        "pipeline": {"metrics_file": str(metrics), "stream_id": "door"},
        "source": {"type": "stream", "uri": rtsp_server.url, "max_frames": 240},
        "detector": {"type": "mtcnn"},
        "classifier": {"type": "fer"},
        "tracking": {"detect_every": 5},
        "sinks": [{"type": "jsonl", "path": str(events)}],
    })
    proc = run_cli("run", str(cfg), "--no-status", timeout=300)
    assert proc.returncode == 0, proc.stderr
    frames = read_events(events)
    source = json.loads(metrics.read_text())["source"]
    assert source["frames_in"] == 240
    assert source["frames_out"] + source["dropped"] == 240  # every captured frame accounted for
    assert len(frames) == source["frames_out"] >= 10  # a busy machine drops more, never queues
    assert sum(bool(e["faces"]) for e in frames) >= 0.75 * len(frames)
    assert {f["frame_size"] == [512, 512] for f in frames} == {True}


@NEEDS_DATA
@NEEDS_RTSP
def test_source_reconnects_after_the_server_restarts(tmp_path: Path, rtsp_server: RtspServer) -> None:
    events, metrics = tmp_path / "events.jsonl", tmp_path / "metrics.json"
    cfg = write_config(tmp_path, {
        "pipeline": {"metrics_file": str(metrics), "stream_id": "door"},
        "source": {"type": "stream", "uri": rtsp_server.url, "reconnect_backoff_s": 0.2,
                   "reconnect_max_backoff_s": 1.0, "open_timeout_ms": 2000, "read_timeout_ms": 2000},
        "sinks": [{"type": "jsonl", "path": str(events)}],
    })
    run = start_run(cfg)
    try:
        wait_for(lambda: count_lines(events, "frame") >= 30, "frames before the break")
        rtsp_server.kill()
        time.sleep(3.0)
        assert run.poll() is None, "the pipeline exited while its source was reconnecting"
        before = count_lines(events, "frame")
        rtsp_server.start()
        wait_for(lambda: count_lines(events, "gap") >= 1 and count_lines(events, "frame") > before + 30,
                 "frames after the reconnect", timeout=60)
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    (gap,) = read_events(events, "gap")
    assert gap["gap_s"] >= 2.5 and gap["reconnects"] == 1 and gap["attempts"] >= 1
    seqs = [e["seq"] for e in read_events(events)]
    assert seqs == list(range(len(seqs)))  # numbering goes on across the gap, nothing lost
    source = json.loads(metrics.read_text())["source"]
    assert source["reconnects"] == 1 and source["gap_s"] >= 2.5


@NEEDS_RTSP
def test_unreachable_stream_fails_after_its_attempts(tmp_path: Path) -> None:
    url = f"rtsp://127.0.0.1:{free_tcp_port()}/stream"
    cfg = write_config(tmp_path, {
        "source": {"type": "stream", "uri": url, "open_attempts": 2, "open_timeout_ms": 1000,
                   "reconnect_backoff_s": 0.2},
        "sinks": [{"type": "jsonl", "path": str(tmp_path / "e.jsonl")}],
    })
    t0 = time.monotonic()
    proc = run_cli("run", str(cfg), "--no-status", timeout=120)
    assert proc.returncode == 1
    assert url in proc.stderr and "gave up after 2 attempts" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 60
