"""Sinks with real files and sockets: video finalisation, events against the JSON Schema."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import zmq
from pipeline_helpers import video_frames

from vidaffect.draw import annotate
from vidaffect.errors import VidaffectError
from vidaffect.events import build_frame_event, load_event_schema
from vidaffect.frames import Frame
from vidaffect_plugins.sinks.display import DisplaySink
from vidaffect_plugins.sinks.jsonl import JsonlSink
from vidaffect_plugins.sinks.video import VideoSink
from vidaffect_plugins.sinks.zmq_events import ZmqEventsSink

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def frame(seq: int, stream: str = "cam0", size: tuple[int, int] = (96, 64)) -> Frame:
    rng = np.random.default_rng(seq)
    img = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    img.setflags(write=False)  # like a frame received from ZeroMQ
    probs = [0.05, 0.05, 0.05, 0.6, 0.1, 0.1, 0.05]
    face = {"bbox": [10.0, 8.0, 50.0, 56.0], "score": 0.99, "landmarks": [[20.0, 20.0]] * 5,
            "emotion": {"label": "happy", "score": 0.6, "probs": probs}}
    return Frame(img, stream, seq, time.time_ns(), seq * 40.0, {"faces": [face], "labels": LABELS, "fps": 25.0})


def test_annotate_copies_and_draws() -> None:
    f = frame(0)
    out = annotate(f.image, f.faces, LABELS, prob_bars=True)
    assert out is not f.image and out.flags.writeable
    assert not np.array_equal(out, f.image)
    assert np.array_equal(frame(0).image, f.image)  # input untouched


def test_video_sink_writes_every_frame_and_finalises(tmp_path: Path) -> None:
    sink = VideoSink(VideoSink.Config(path=str(tmp_path / "a" / "v.mp4")))
    sink.open()
    for i in range(12):
        sink.write(frame(i))
    sink.close()
    assert video_frames(tmp_path / "a" / "v.mp4") == (12, (96, 64))


def test_video_sink_second_stream_and_odd_sizes(tmp_path: Path) -> None:
    sink = VideoSink(VideoSink.Config(path=str(tmp_path / "v.mp4")))
    sink.open()
    sink.write(frame(0, "a"))
    sink.write(frame(1, "a", size=(50, 80)))  # letterboxed into the first size
    sink.write(frame(0, "b"))
    sink.close()
    assert video_frames(tmp_path / "v.mp4") == (2, (96, 64))
    assert video_frames(tmp_path / "v.b.mp4") == (1, (96, 64))


def test_path_under_a_file_is_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(VidaffectError, match="cannot create folder"):
        VideoSink(VideoSink.Config(path=str(tmp_path / "file" / "v.mp4"))).open()


def test_jsonl_events_validate_against_schema(tmp_path: Path) -> None:
    sink = JsonlSink(JsonlSink.Config(path=str(tmp_path / "e.jsonl")))
    sink.open()
    for i in range(3):
        sink.write(frame(i))
    sink.close()
    schema = load_event_schema()
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        event = json.loads(line)
        jsonschema.validate(event, schema)
        assert event["faces"][0]["emotion"]["probs"]["happy"] == 0.6


def test_schema_rejects_a_broken_event() -> None:
    event = build_frame_event(frame(0))
    del event["faces"][0]["bbox"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, load_event_schema())


def test_zmq_events_reach_a_real_subscriber() -> None:
    sink = ZmqEventsSink(ZmqEventsSink.Config(endpoint="tcp://127.0.0.1:*"))
    sink.open()
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"cam7")
    sub.connect(sink.endpoint)
    got = None
    deadline = time.monotonic() + 10
    seq = 0
    while got is None and time.monotonic() < deadline:  # PUB/SUB: joins take a moment
        sink.write(frame(seq, "other"))
        sink.write(frame(seq, "cam7"))
        seq += 1
        if sub.poll(50):
            got = sub.recv_multipart()
    sub.close(0)
    sink.close()
    assert got is not None and got[0] == b"cam7"
    event = json.loads(got[1])
    assert event["stream"] == "cam7"
    jsonschema.validate(event, load_event_schema())


def test_zmq_bind_conflict_is_clear_error() -> None:
    first = ZmqEventsSink(ZmqEventsSink.Config(endpoint="tcp://127.0.0.1:*"))
    first.open()
    second = ZmqEventsSink(ZmqEventsSink.Config(endpoint=first.endpoint))
    with pytest.raises(VidaffectError, match="cannot bind"):
        second.open()
    first.close()


def test_display_without_a_screen_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(VidaffectError, match="no display available"):
        DisplaySink(DisplaySink.Config()).open()
