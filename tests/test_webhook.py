"""The webhook sink against a real HTTP server on 127.0.0.1 (a subprocess, stopped by PID):
signed bodies, cooldown, retries, a slow endpoint that does not slow the pipeline, a dead one,
face snapshots."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import face_pipeline, run_cli

from vidaffect.config import validate
from vidaffect.errors import SinkError
from vidaffect.frames import Frame
from vidaffect.runtime.graph import build_specs
from vidaffect.runtime.transport import free_tcp_port
from vidaffect.testing.http_receiver import HttpReceiver
from vidaffect.testing.probe import wait_until
from vidaffect_plugins.sinks.webhook import WebhookSink


def change_frame(seq: int, track: int, to: str | None, image: np.ndarray | None = None) -> Frame:
    face = {"bbox": [40.0, 30.0, 120.0, 130.0], "score": 0.99, "track_id": track}
    meta: dict[str, Any] = {
        "faces": [face],
        "changes": [{"track_id": track, "from": "neutral", "to": to, "score": 0.8}],
    }
    img = image if image is not None else np.zeros((240, 320, 3), np.uint8)
    return Frame(img, "cam0", seq, time.time_ns(), None, meta)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[HttpReceiver]:
    r = HttpReceiver(tmp_path, free_tcp_port())
    yield r
    r.stop()


def open_sink(url: str, **options: Any) -> WebhookSink:
    sink = WebhookSink(WebhookSink.Config(url=url, **options))
    sink.open()
    return sink


def test_events_arrive_signed_and_a_track_cools_down(
    receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    sink = open_sink(receiver.url, secret_env="HOOK_SECRET", cooldown_s=60)
    for seq, (track, to) in enumerate([(1, "happy"), (1, "sad"), (2, "surprise"), (1, "angry"), (1, None)]):
        sink.write(change_frame(seq, track, to))
    sink.close()
    got = receiver.requests()
    bodies = [json.loads(r["body"]) for r in got]
    # track 1: happy sent, sad and angry within the cooldown suppressed, its end always sent
    assert [(b["track_id"], b["to"]) for b in bodies] == [(1, "happy"), (2, "surprise"), (1, None)]
    assert sink.counters() == {"posted": 3, "failed": 0, "dropped": 0, "suppressed": 2}
    for r in got:
        headers = {k.lower(): v for k, v in r["headers"].items()}
        ts = headers["x-vidaffect-timestamp"]
        expected = hmac.new(b"s3cret", ts.encode() + b"." + r["body"].encode(), hashlib.sha256).hexdigest()
        assert headers["x-vidaffect-signature"] == f"sha256={expected}"
        assert abs(int(ts) - time.time()) < 60 and headers["content-type"] == "application/json"
    assert bodies[0]["type"] == "change" and bodies[0]["schema"] == "vidaffect.event"


def test_a_failing_endpoint_is_retried(tmp_path: Path) -> None:
    r = HttpReceiver(tmp_path, free_tcp_port(), fail_first=2)
    try:
        sink = open_sink(r.url, retries=3)
        sink.write(change_frame(0, 1, "happy"))
        wait_until(lambda: len(r.requests()) >= 3, "three attempts", timeout=15)
        sink.close()
        assert len(r.requests()) == 3 and sink.counters()["posted"] == 1 and sink.counters()["failed"] == 0
        assert len({x["body"] for x in r.requests()}) == 1  # the same event each time
    finally:
        r.stop()


def test_a_slow_endpoint_does_not_slow_the_pipeline_and_the_queue_is_bounded(tmp_path: Path) -> None:
    r = HttpReceiver(tmp_path, free_tcp_port(), delay=1.0)
    try:
        sink = open_sink(r.url, queue_size=5, cooldown_s=0, timeout_s=5)
        t0 = time.perf_counter()
        for seq in range(50):
            sink.write(change_frame(seq, seq, "happy"))  # 50 tracks: no cooldown applies
        writing = time.perf_counter() - t0
        assert writing < 1.0  # a blocking POST would take 50 s here
        sink.close()  # drains for at most timeout_s, then counts what is left
        c = sink.counters()
        assert c["dropped"] >= 40 and c["posted"] + c["failed"] + c["dropped"] == 50
        delivered = [json.loads(x["body"])["track_id"] for x in r.requests()]
        assert delivered and delivered == sorted(delivered) and delivered[-1] >= 44  # the newest kept
    finally:
        r.stop()


def test_a_dead_endpoint_is_counted_not_fatal() -> None:
    sink = open_sink(f"http://127.0.0.1:{free_tcp_port()}/hook", retries=1, timeout_s=1)
    sink.write(change_frame(0, 1, "happy"))
    wait_until(lambda: sink.counters()["failed"] == 1, "the event given up", timeout=15)
    sink.close()
    assert sink.counters()["posted"] == 0


def test_a_missing_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    with pytest.raises(SinkError, match="NO_SUCH_SECRET"):
        open_sink("http://127.0.0.1:9/hook", secret_env="NO_SUCH_SECRET")


def test_snapshots_carry_the_face_and_are_rate_capped(receiver: HttpReceiver) -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    img[30:130, 40:120] = (0, 0, 255)  # the face area is red (BGR)
    sink = open_sink(receiver.url, snapshot=True, snapshot_every_s=60, cooldown_s=0)
    sink.write(change_frame(0, 1, "happy", img))
    sink.write(change_frame(1, 2, "sad", img))  # within snapshot_every_s: no snapshot
    sink.close()
    bodies = [json.loads(x["body"]) for x in receiver.requests()]
    assert len(bodies) == 2 and "snapshot_jpeg_b64" not in bodies[1]
    jpeg = cv2.imdecode(
        np.frombuffer(base64.b64decode(bodies[0]["snapshot_jpeg_b64"]), np.uint8), cv2.IMREAD_COLOR
    )
    assert jpeg.shape == (140, 112, 3)  # the 80x100 box with 20% on each side
    assert jpeg[70, 56, 2] > 200 and jpeg[70, 56, 0] < 50  # red in the middle


def test_only_a_snapshotting_webhook_is_sent_pixels() -> None:
    def pixels(snapshot: bool) -> list[bool]:
        cfg = validate(
            {
                "source": {"type": "video", "uri": __file__},
                "sinks": [{"type": "webhook", "url": "http://127.0.0.1:9/h", "snapshot": snapshot}],
            },
            "p.yaml",
        )
        return [
            list(ws.spec.outputs_pixels)
            for ws in build_specs(cfg, str, "c", "u")
            if ws.stage.kind == "source"
        ][0]

    assert pixels(False) == [False] and pixels(True) == [True]


@pytest.mark.slow
@NEEDS_DATA
def test_a_pipeline_posts_its_label_changes(tmp_path: Path) -> None:
    r = HttpReceiver(tmp_path, free_tcp_port())
    try:
        sinks = [{"type": "webhook", "url": r.url, "secret_env": "HOOK_SECRET", "cooldown_s": 0}]
        cfg = face_pipeline(tmp_path, DATA / "videos" / "liveportrait_d0.mp4", sinks)
        proc = run_cli("run", str(cfg), timeout=300, env={"HOOK_SECRET": "k"})
        assert proc.returncode == 0, proc.stderr
        bodies = [json.loads(x["body"]) for x in r.requests()]
        assert bodies and all(b["type"] == "change" for b in bodies)
        assert bodies[-1]["to"] is None  # the stream's end ended the track
        assert f"sink-0-webhook: posted {len(bodies)}, failed 0, dropped 0" in proc.stderr
    finally:
        r.stop()
