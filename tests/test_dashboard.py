"""The preview sink and ``vidaffect dashboard``: a real dashboard process on 127.0.0.1, queried
over HTTP, and a whole pipeline watched in a real headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from browser import NEEDS_BROWSER, chromium_page
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import REPO, face_pipeline, start_run, wait_for

from vidaffect.config import validate
from vidaffect.errors import ConfigError
from vidaffect.frames import Frame
from vidaffect.runtime.transport import free_tcp_port
from vidaffect_plugins.sinks.preview import PreviewSink

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _frame(seq: int, label: str) -> Frame:
    emo = {"label": label, "score": 0.8, "probs": [0.8 if x == label else 0.2 / 6 for x in LABELS]}
    face = {"bbox": [20.0, 20.0, 80.0, 90.0], "score": 0.99, "track_id": 3, "emotion": emo, "smoothed": emo}
    meta = {
        "faces": [face],
        "labels": LABELS,
        "changes": [{"track_id": 3, "from": None, "to": label, "score": 0.8}],
    }
    return Frame(np.full((120, 160, 3), 90, np.uint8), "lobby", seq, time.time_ns(), None, meta)


@pytest.fixture
def dashboard(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A dashboard process watching a preview endpoint, with a token; yields (URL, endpoint)."""
    endpoint, port = f"tcp://127.0.0.1:{free_tcp_port()}", free_tcp_port()
    env = {**os.environ, "DASH_TOKEN": "t0ken"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vidaffect",
            "dashboard",
            endpoint,
            "--port",
            str(port),
            "--token-env",
            "DASH_TOKEN",
        ],
        cwd=REPO,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/api/streams?token=t0ken", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, "the dashboard", timeout=30)
        yield url, endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_dashboard_serves_what_the_preview_sink_publishes(dashboard: tuple[str, str]) -> None:
    url, endpoint = dashboard
    sink = PreviewSink(PreviewSink.Config(endpoint=endpoint, max_fps=50))
    sink.open()
    try:
        auth = {"Authorization": "Bearer t0ken"}

        def seen() -> bool:
            sink.write(_frame(int(time.time() * 100), "happy"))  # PUB: the dashboard joins late
            got = httpx.get(url + "/api/streams", headers=auth, timeout=2).json()
            return bool(got) and got[0]["faces"] != []

        wait_for(seen, "a stream on the dashboard", timeout=20)
        streams = httpx.get(url + "/api/streams", headers=auth).json()
        assert [s["stream"] for s in streams] == ["lobby"] and streams[0]["mood"]["label"] == "happy"
        tracks = httpx.get(url + "/api/streams/lobby/tracks", headers=auth).json()
        assert tracks[0]["track_id"] == 3 and tracks[0]["smoothed_label"] == "happy"
        timeline = httpx.get(url + "/api/streams/lobby/timeline", headers=auth).json()
        assert timeline["t"] and timeline["shares"]["happy"][-1] == 1.0
        events = httpx.get(url + "/api/streams/lobby/events", headers=auth).json()
        assert events and events[-1]["type"] == "change" and events[-1]["to"] == "happy"
        sink.run_stats({"detector": {"frames_in": 10, "frames_out": 10}})
        wait_for(lambda: httpx.get(url + "/api/pipelines", headers=auth).json() != {}, "stage counters")
        with httpx.stream("GET", url + "/streams/lobby/mjpeg?token=t0ken", timeout=5) as r:
            assert r.headers["content-type"].startswith("multipart/x-mixed-replace")
            head = next(r.iter_bytes())
        assert b"Content-Type: image/jpeg" in head and b"\xff\xd8" in head  # a JPEG starts
        assert httpx.get(url + "/api/streams").status_code == 401  # no token
        assert httpx.get(url + "/api/streams?token=wrong").status_code == 401
    finally:
        sink.close()


def test_the_dashboard_setting_needs_a_preview_sink_and_a_token_beyond_loopback() -> None:
    base: dict[str, Any] = {
        "source": {"type": "video", "uri": __file__},
        "sinks": [{"type": "jsonl", "path": "e"}],
    }
    with pytest.raises(ConfigError, match="add one"):
        validate({**base, "pipeline": {"dashboard": {"port": 8080}}}, "p.yaml")
    with pytest.raises(ConfigError, match="token_env"):
        validate({**base, "pipeline": {"dashboard": {"port": 8080, "host": "0.0.0.0"}}}, "p.yaml")
    with pytest.raises(ConfigError, match="lets other hosts watch"):
        validate({**base, "sinks": [{"type": "preview", "endpoint": "tcp://0.0.0.0:5570"}]}, "p.yaml")


@pytest.mark.slow
@NEEDS_BROWSER
@NEEDS_DATA
def test_a_browser_shows_the_live_dashboard_of_a_run(tmp_path: Path) -> None:
    port = free_tcp_port()
    preview = {"type": "preview", "endpoint": f"tcp://127.0.0.1:{free_tcp_port()}", "max_fps": 10}
    clip = DATA / "videos" / "liveportrait_d0.mp4"
    cfg = face_pipeline(
        tmp_path, clip, [preview], source="fake_camera", dashboard={"port": port}, max_frames=750
    )
    proc = start_run(cfg)
    url = f"http://127.0.0.1:{port}"

    def faces_shown() -> bool:
        try:
            got = httpx.get(url + "/api/streams", timeout=1).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(got) and bool(got[0]["faces"]) and bool(got[0]["stats"])

    wait_for(faces_shown, "faces on the dashboard", timeout=120)
    with chromium_page() as page:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(url + "/streams/cam0")
        page.wait_for_function("document.getElementById('video').naturalWidth > 0", timeout=20_000)
        page.wait_for_selector("#tracks tbody tr", timeout=20_000)
        page.wait_for_selector("#stats tbody tr:nth-child(4)", timeout=20_000)  # source .. sink
        page.wait_for_selector("#timeline canvas", timeout=20_000)
        time.sleep(3)  # a few seconds of timeline
        assert page.evaluate("document.getElementById('video').naturalWidth") == 512
        assert page.inner_text("#tracks tbody tr td:nth-child(2)") in LABELS
        drawn = page.evaluate(
            """() => { const c = document.querySelector('#timeline canvas');
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
        )
        assert drawn > 1000  # the chart drew its axes and lines
        if os.environ.get("VIDAFFECT_SCREENSHOT"):
            page.screenshot(path=os.environ["VIDAFFECT_SCREENSHOT"], full_page=True)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
