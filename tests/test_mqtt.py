"""The mqtt sink against a real mosquitto broker on 127.0.0.1: retained state a late subscriber
sees, events, tracks cleared when they end, the last will after a SIGKILL, a broker restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import face_pipeline, run_cli

from vidaffect.errors import PluginError, SinkError
from vidaffect.frames import Frame
from vidaffect.runtime.transport import free_tcp_port
from vidaffect.testing.mqtt import Broker, Recorder, mosquitto_path
from vidaffect.testing.probe import wait_until
from vidaffect_plugins.sinks.mqtt import MqttSink

pytestmark = pytest.mark.skipif(
    mosquitto_path() is None, reason="needs the mosquitto broker (Debian: make mqtt-deps)"
)
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def face(track: int, label: str, score: float) -> dict[str, Any]:
    probs = [(1 - score) / 6] * 7
    probs[LABELS.index(label)] = score
    emo = {"label": label, "score": score, "probs": probs}
    return {
        "bbox": [10.0, 10.0, 40.0, 40.0],
        "score": 0.99,
        "track_id": track,
        "emotion": emo,
        "smoothed": emo,
    }


def frame(
    seq: int, faces: list[dict[str, Any]], changes: list[dict[str, Any]] | None = None, stream: str = "cam0"
) -> Frame:
    meta: dict[str, Any] = {"faces": faces, "labels": LABELS}
    if changes:
        meta["changes"] = changes
    return Frame(np.zeros((48, 64, 3), np.uint8), stream, seq, 1_000 + seq, None, meta)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def open_sink(port: int, **options: Any) -> MqttSink:
    sink = MqttSink(MqttSink.Config(port=port, **options))
    sink.streams = ["cam0"]
    sink.open()
    return sink


def test_a_late_subscriber_sees_the_current_state_and_ended_tracks_are_cleared(broker: Broker) -> None:
    early = Recorder(broker.port, "vidaffect/#")
    sink = open_sink(broker.port)
    try:
        sink.write(
            frame(
                0,
                [face(1, "neutral", 0.7), face(2, "happy", 0.8)],
                [{"track_id": 1, "from": None, "to": "neutral", "score": 0.7}],
            )
        )
        sink.write(
            frame(
                1,
                [face(1, "happy", 0.75), face(2, "happy", 0.9)],
                [{"track_id": 1, "from": "neutral", "to": "happy", "score": 0.75}],
            )
        )
        # once the broker has passed on the second frame's state, a new subscriber gets it retained
        wait_until(lambda: b'"happy"' in (early.last("vidaffect/cam0/tracks/1") or b""), "track 1 happy")
        late = Recorder(broker.port, "vidaffect/#")
        wait_until(lambda: late.last("vidaffect/cam0/tracks/2") is not None, "retained track 2")
        assert late.last("vidaffect/available") == b"online"
        assert json.loads(late.last("vidaffect/cam0/status") or b"{}")["state"] == "online"
        assert late.last("vidaffect/cam0/faces") == b"2"
        mood = json.loads(late.last("vidaffect/cam0/mood") or b"{}")
        assert mood["label"] == "happy" and mood["faces"] == 2
        track1 = json.loads(late.last("vidaffect/cam0/tracks/1") or b"{}")
        assert track1["label"] == "happy" and track1["probs"]["happy"] == 0.75 and track1["since_ns"] == 1_001
        assert late.on("vidaffect/cam0/mood")[0][1]  # delivered as a retained message
        assert late.on("vidaffect/cam0/events") == []  # events are not retained
        changes = [json.loads(p) for p, _ in early.on("vidaffect/cam0/events")]
        assert [(c["type"], c["track_id"], c["to"]) for c in changes] == [
            ("change", 1, "neutral"),
            ("change", 1, "happy"),
        ]
        # track 1 ends: its retained topic is deleted (an empty retained message)
        sink.write(
            frame(2, [face(2, "happy", 0.9)], [{"track_id": 1, "from": "happy", "to": None, "score": None}])
        )
        wait_until(lambda: (b"", False) in late.on("vidaffect/cam0/tracks/1"), "track 1 cleared")
        after = Recorder(broker.port, "vidaffect/#")
        wait_until(lambda: after.last("vidaffect/cam0/tracks/2") is not None, "retained track 2 again")
        assert after.on("vidaffect/cam0/tracks/1") == []
        sink.end_of_stream("cam0", {"frames": 3, "changes": [{"track_id": 2, "from": "happy", "to": None}]})
        wait_until(
            lambda: json.loads(late.last("vidaffect/cam0/status") or b"{}").get("state") == "ended", "ended"
        )
        assert late.last("vidaffect/cam0/faces") == b"0" and late.last("vidaffect/cam0/tracks/2") == b""
        for r in (late, after):
            r.close()
    finally:
        sink.close()
    wait_until(lambda: early.last("vidaffect/available") == b"offline", "offline after a clean close")
    assert sink.counters() == {"events_sent": 4, "events_dropped": 0}
    early.close()


def test_the_last_will_says_offline_after_a_sigkill(broker: Broker, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_mqtt import frame, face, open_sink
        sink = open_sink({broker.port}, keepalive_s=1)
        sink.write(frame(0, [face(1, "happy", 0.8)]))
        print("ready", flush=True)
        time.sleep(600)
    """)
    watcher = Recorder(broker.port, "vidaffect/#")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        wait_until(lambda: watcher.last("vidaffect/available") == b"online", "online")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: watcher.last("vidaffect/available") == b"offline", "the last will", timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        watcher.close()


def test_the_sink_rides_out_a_broker_restart_and_republishes_its_state(broker: Broker) -> None:
    sink = open_sink(broker.port, keepalive_s=2)
    try:
        sink.write(
            frame(0, [face(7, "sad", 0.6)], [{"track_id": 7, "from": None, "to": "sad", "score": 0.6}])
        )
        broker.stop()
        wait_until(lambda: not sink._connected.is_set(), "the sink to notice the broker went away")
        for seq in range(1, 4):  # the pipeline goes on; events meanwhile are dropped and counted
            sink.write(
                frame(
                    seq,
                    [face(7, "surprise", 0.9)],
                    [{"track_id": 7, "from": "sad", "to": "surprise", "score": 0.9}],
                )
            )
        assert sink.counters()["events_dropped"] == 3
        broker.start()  # same port, and no persistence: the broker forgot every retained message
        watcher = Recorder(broker.port, "vidaffect/#")
        wait_until(
            lambda: watcher.last("vidaffect/cam0/tracks/7") is not None, "state republished", timeout=40
        )
        assert watcher.last("vidaffect/available") == b"online"
        assert json.loads(watcher.last("vidaffect/cam0/tracks/7") or b"{}")["label"] == "surprise"
        assert watcher.last("vidaffect/cam0/faces") == b"1"
        watcher.close()
    finally:
        sink.close()


def test_an_unreachable_broker_is_named_before_the_run_and_at_open() -> None:
    port = free_tcp_port()  # nothing listens there
    with pytest.raises(PluginError, match=f"cannot reach the broker at 127.0.0.1:{port}"):
        MqttSink.preflight(MqttSink.Config(port=port, connect_timeout_s=2))
    with pytest.raises(SinkError, match=f"127.0.0.1:{port}"):
        open_sink(port, connect_timeout_s=2)


def test_frame_events_are_rate_capped(broker: Broker) -> None:
    watcher = Recorder(broker.port, "vidaffect/cam0/frames")
    sink = open_sink(broker.port, frame_events=True, frame_events_hz=5)
    try:
        for seq in range(50):  # 50 frames in well under a second: at most a few events
            sink.write(frame(seq, [face(1, "happy", 0.8)]))
    finally:
        sink.close()
    wait_until(lambda: len(watcher.on("vidaffect/cam0/frames")) >= 1, "a frame event")
    got = [json.loads(p) for p, _ in watcher.on("vidaffect/cam0/frames")]
    assert 1 <= len(got) <= 3 and got[0]["type"] == "frame" and got[0]["seq"] == 0
    watcher.close()


@pytest.mark.slow
@NEEDS_DATA
def test_a_pipeline_publishes_to_the_broker(broker: Broker, tmp_path: Path) -> None:
    watcher = Recorder(broker.port, "#")  # discovery goes under homeassistant/
    sinks = [{"type": "mqtt", "port": broker.port, "topic_prefix": "vidaffect", "discovery": True}]
    cfg = face_pipeline(tmp_path, DATA / "videos" / "liveportrait_d0.mp4", sinks)
    proc = run_cli("run", str(cfg), timeout=300)
    try:
        assert proc.returncode == 0, proc.stderr
        assert "sink-0-mqtt: events_sent" in proc.stderr and "events_dropped 0" in proc.stderr
        wait_until(lambda: watcher.last("vidaffect/available") == b"offline", "offline at the end")
        status = json.loads(watcher.last("vidaffect/cam0/status") or b"{}")
        assert status["state"] == "ended" and status["frames"] == 60
        changes = [json.loads(p) for p, _ in watcher.on("vidaffect/cam0/events")]
        assert changes and {c["type"] for c in changes} == {"change"}
        assert changes[-1]["to"] is None  # the stream's end ended the track
        assert (
            json.loads(watcher.last("homeassistant/sensor/vidaffect_vidaffect_cam0_mood/config") or b"{}")[
                "state_topic"
            ]
            == "vidaffect/cam0/mood"
        )
        tracks = {t for t, _, _ in watcher.messages if "/tracks/" in t}
        assert tracks and all(watcher.last(t) == b"" for t in tracks)  # every track cleared at the end
    finally:
        watcher.close()
