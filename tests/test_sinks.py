"""Sinks with real files and sockets: video finalisation, events against the JSON Schema."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
import zmq
from browser import NEEDS_BROWSER, PLAY_VIDEO, chromium_page, http_server
from pipeline_helpers import run_cli, video_fps, video_frames, write_config

from vidaffect.config import load_config
from vidaffect.errors import VidaffectError
from vidaffect.events.build import (
    EVENT_SCHEMA_ID,
    build_change_event,
    build_frame_event,
    encode_event,
    frame_side_events,
    load_event_schema,
)
from vidaffect.frames import Frame
from vidaffect.imaging.draw import FALLBACK_COLOUR, PALETTE, annotate
from vidaffect_plugins.sinks import register_sinks
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
    face = {
        "bbox": [10.0, 8.0, 50.0, 56.0],
        "score": 0.99,
        "landmarks": [[20.0, 20.0]] * 5,
        "emotion": {"label": "happy", "score": 0.6, "probs": probs},
    }
    return Frame(
        img, stream, seq, time.time_ns(), seq * 40.0, {"faces": [face], "labels": LABELS, "fps": 25.0}
    )


def test_annotate_copies_and_draws() -> None:
    f = frame(0)
    out = annotate(f.image, f.faces, LABELS, prob_bars=True)
    assert out is not f.image and out.flags.writeable
    assert not np.array_equal(out, f.image)
    assert np.array_equal(frame(0).image, f.image)  # input untouched


def test_annotate_draws_inside_the_box_in_the_label_colour() -> None:
    img = np.full((120, 160, 3), 40, np.uint8)
    img.setflags(write=False)
    face = {
        "bbox": [40.0, 50.0, 100.0, 110.0],
        "score": 0.9,
        "track_id": 3,
        "emotion": {"label": "sad", "score": 0.7, "probs": [0.05] * 4 + [0.7] + [0.05] * 2},
    }
    out = annotate(img, [face], LABELS)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert tuple(out[80, 40]) == PALETTE["sad"]  # left edge of the box
    assert tuple(out[110, 70]) == PALETTE["sad"]  # bottom edge
    assert np.any(out[45:111, 40:101] != 40)  # something drawn in the box region
    assert np.all(out[115:, 110:] == 40)  # far corner untouched
    plain = annotate(img, [{"bbox": [40, 50, 100, 110], "score": 0.9}])
    assert tuple(plain[80, 40]) == FALLBACK_COLOUR  # no emotion: fallback colour


@pytest.mark.parametrize(("bbox", "side"), [([20, 30, 60, 80], "right"), ([150, 30, 190, 80], "left")])
def test_prob_bars_sit_beside_the_box_inside_the_image(bbox: list[int], side: str) -> None:
    img = np.full((200, 200, 3), 40, np.uint8)
    face = {
        "bbox": bbox,
        "score": 0.9,
        "emotion": {"label": "happy", "score": 0.6, "probs": [0.05, 0.05, 0.05, 0.6, 0.1, 0.1, 0.05]},
    }
    without = annotate(img, [face], LABELS)
    with_bars = annotate(img, [face], LABELS, prob_bars=True)
    changed = np.any(with_bars != without, axis=2)
    cols = np.nonzero(changed.any(axis=0))[0]
    assert cols.size > 0
    if side == "right":
        assert cols.min() > bbox[2]
    else:
        assert cols.max() < bbox[0]


def test_prob_bars_never_cover_another_faces_box_or_tag() -> None:
    """A crowded frame (a row of faces, a second row below): every panel drawn lands where it
    covers no face box and no tag; where no such place exists the face keeps its tag alone."""
    from vidaffect.imaging.draw import _label_rect, _Style

    img = np.full((400, 800, 3), 40, np.uint8)
    probs = [0.05, 0.05, 0.05, 0.6, 0.1, 0.1, 0.05]
    faces = [
        {
            "bbox": [10 + 130 * k, 40 + 180 * row, 70 + 130 * k, 110 + 180 * row],
            "score": 0.9,
            "track_id": k,
            "emotion": {"label": "happy", "score": 0.6, "probs": probs},
        }
        for row in (0, 1)
        for k in range(6)
    ]
    without = annotate(img, faces, LABELS)
    with_bars = annotate(img, faces, LABELS, prob_bars=True)
    changed = np.any(with_bars != without, axis=2)
    assert changed.any()  # some faces got their panel
    st = _Style(800, 400)
    for face in faces:
        x1, y1, x2, y2 = face["bbox"]
        assert not changed[y1 : y2 + 1, x1 : x2 + 1].any()  # no panel over a face
        left, top, right, bottom = _label_rect((800, 400), f"happy 0.60 #{face['track_id']}", x1, y1, st)
        assert not changed[top:bottom, left:right].any()  # nor over a tag
    packed = [{**f, "bbox": [0, 0, 799, 399]} for f in faces[:1]]  # the face fills the frame
    assert np.array_equal(annotate(img, packed, LABELS, prob_bars=True), annotate(img, packed, LABELS))


def test_video_sink_writes_every_frame_and_finalises(tmp_path: Path) -> None:
    sink = VideoSink(VideoSink.Config(path=str(tmp_path / "a" / "v.mp4")))
    sink.open()
    for i in range(12):
        sink.write(frame(i))
    sink.close()
    assert video_frames(tmp_path / "a" / "v.mp4") == (12, (96, 64))


def test_video_sink_closed_early_stays_readable(tmp_path: Path) -> None:
    sink = VideoSink(VideoSink.Config(path=str(tmp_path / "cut.mp4"), fps=12.0))
    sink.open()
    assert not (tmp_path / "cut.mp4").exists()  # opened lazily, on the first frame
    for i in range(3):  # e.g. Ctrl-C after 3 of 10 frames: close() without end_of_stream
        sink.write(frame(i, size=(64, 48)))
    sink.close()
    assert sink.frames_written == 3
    assert video_frames(tmp_path / "cut.mp4") == (3, (64, 48))
    assert video_fps(tmp_path / "cut.mp4") == pytest.approx(12.0, abs=0.01)


def test_video_sink_fps_comes_from_the_source(tmp_path: Path) -> None:
    sink = VideoSink(VideoSink.Config(path=str(tmp_path / "v.mp4")))
    sink.open()
    for i in range(10):
        f = frame(i, size=(64, 48))
        f.meta["fps"] = 10.0
        sink.write(f)
    sink.end_of_stream("cam0", {})
    sink.close()
    assert video_frames(tmp_path / "v.mp4") == (10, (64, 48))
    assert video_fps(tmp_path / "v.mp4") == pytest.approx(10.0, abs=0.01)


def test_video_sink_second_stream_and_odd_sizes(tmp_path: Path) -> None:
    sink = VideoSink(VideoSink.Config(path=str(tmp_path / "v.mp4")))
    sink.open()
    sink.write(frame(0, "a"))
    sink.write(frame(1, "a", size=(50, 80)))  # letterboxed into the first size
    sink.write(frame(0, "b"))
    sink.close()
    assert video_frames(tmp_path / "v.mp4") == (2, (96, 64))
    assert video_frames(tmp_path / "v.b.mp4") == (1, (96, 64))
    assert sink.frames_written == 3 and sink.paths == {"a": tmp_path / "v.mp4", "b": tmp_path / "v.b.mp4"}


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
        face = event["faces"][0]
        assert face["emotion"]["probs"]["happy"] == 0.6
        assert list(face["emotion"]["probs"]) == LABELS
        assert face["bbox"] == [10.0, 8.0, 50.0, 56.0] and len(face["landmarks"]) == 5
        assert face["track_id"] is None
    assert [json.loads(line)["seq"] for line in lines] == [0, 1, 2]


def test_jsonl_lines_are_on_disk_before_close(tmp_path: Path) -> None:
    sink = JsonlSink(JsonlSink.Config(path=str(tmp_path / "deep" / "e.jsonl")))
    sink.open()
    sink.write(frame(0))
    sink.write(frame(1))
    lines = (tmp_path / "deep" / "e.jsonl").read_text().splitlines()
    sink.close()
    assert [json.loads(line)["seq"] for line in lines] == [0, 1]
    assert sink.lines == 2


def test_event_fields_and_encoding() -> None:
    schema = load_event_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == EVENT_SCHEMA_ID
    f = frame(5, "cam2", size=(64, 48))
    f.faces.append({"bbox": [1, 2, 3, 4], "score": 0.5, "track_id": 7})  # no emotion, no landmarks
    event = build_frame_event(f)
    jsonschema.validate(event, schema)
    assert (event["stream"], event["seq"], event["frame_size"]) == ("cam2", 5, [64, 48])
    assert event["ts_event_ns"] >= event["ts_capture_ns"] == f.ts_ns
    assert event["pts_ms"] == 200.0 and event["labels"] == LABELS
    assert event["faces"][1] == {"bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5, "track_id": 7, "emotion": None}
    raw = encode_event(event)
    assert b" " not in raw and json.loads(raw.decode("utf-8")) == event


def test_image_file_is_carried_into_the_frame_event() -> None:
    schema = load_event_schema()
    f = frame(0)
    assert "image_file" not in build_frame_event(f)  # video frames have none
    f.meta["image_file"] = "group_03.jpg"
    event = build_frame_event(f)
    assert event["image_file"] == "group_03.jpg"
    jsonschema.validate(event, schema)
    for broken in ({**event, "image_file": ""}, {**event, "image_file": 3}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_event_probs_without_matching_labels_is_an_error() -> None:
    f = frame(0)
    f.meta["labels"] = LABELS[:3]
    with pytest.raises(ValueError, match="7 values"):
        build_frame_event(f)


def test_schema_rejects_a_broken_event() -> None:
    event = build_frame_event(frame(0))
    del event["faces"][0]["bbox"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, load_event_schema())


@pytest.mark.parametrize(
    "breakage",
    [
        lambda e: e.update(type="tracks"),
        lambda e: e.update(version=1),
        lambda e: e.update(version=3),
        lambda e: e.update(type="change"),
        lambda e: e.update(extra=1),
        lambda e: e["faces"][0].update(colour="red"),
        lambda e: e["faces"][0]["emotion"]["probs"].update(happy=1.5),
        lambda e: e["faces"][0].update(bbox=[1, 2, 3]),
    ],
)
def test_schema_is_strict(breakage) -> None:  # type: ignore[no-untyped-def]
    event = build_frame_event(frame(0))
    breakage(event)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, load_event_schema())


def test_change_events_validate_and_are_strict() -> None:
    change = {"track_id": 3, "from": "neutral", "to": "happy", "score": 0.61}
    event = build_change_event("cam0", 57, change, 1_700_000_000_000_000_000, 1900.0)
    schema = load_event_schema()
    jsonschema.validate(event, schema)
    jsonschema.validate(
        build_change_event("cam0", 90, {"track_id": 3, "from": "happy", "to": None, "score": None}, 1), schema
    )
    for broken in ({**event, "faces": []}, {**event, "track_id": -1}, {**event, "score": 2.0}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_gap_event_validates() -> None:
    f = Frame(
        np.zeros((4, 4, 3), np.uint8),
        "door",
        812,
        1_700_000_000_000_000_000,
        meta={"gap": {"gap_s": 4.7, "attempts": 3, "reconnects": 1}},
    )
    (event,) = frame_side_events(f)
    assert event["type"] == "gap" and event["seq"] == 812 and event["gap_s"] == 4.7
    jsonschema.validate(event, load_event_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**event, "attempts": 0}, load_event_schema())


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
    assert event["faces"][0]["emotion"]["label"] == "happy"
    jsonschema.validate(event, load_event_schema())
    assert sink.events_sent == 2 * seq


def test_zmq_bind_conflict_is_clear_error() -> None:
    first = ZmqEventsSink(ZmqEventsSink.Config(endpoint="tcp://127.0.0.1:*"))
    first.open()
    second = ZmqEventsSink(ZmqEventsSink.Config(endpoint=first.endpoint))
    try:
        with pytest.raises(VidaffectError, match="cannot bind") as info:
            second.open()
        assert first.endpoint in str(info.value)
    finally:
        first.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY matters on Linux only")
def test_display_without_a_screen_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(VidaffectError, match="no display available") as info:
        DisplaySink(DisplaySink.Config()).open()
    assert "video sink" in str(info.value)


@pytest.mark.slow
def test_display_without_a_screen_stops_the_run_before_any_stage_starts(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    cfg = write_config(
        tmp_path, {"source": {"type": "images", "uri": str(tmp_path / "img")}, "sinks": [{"type": "display"}]}
    )
    assert load_config(cfg).sinks[0].name == "sink-0-display"  # a valid config, an unusable machine
    proc = run_cli("run", str(cfg), "--no-status", env={"DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert proc.returncode != 0
    assert "stage 'sink-0-display': display sink: no display available" in proc.stderr
    assert "frames in" not in proc.stderr  # no stage ran, so no stage table
    assert "Traceback" not in proc.stderr


def test_register_sinks_registers_the_built_in_sinks() -> None:
    registered: list[type] = []
    register_sinks(registered.append)
    assert [cls.name for cls in registered] == [
        "video",
        "images",
        "display",
        "jsonl",
        "zmq_events",
        "mqtt",
        "webhook",
        "preview",
    ]
    for cls in registered:
        assert cls.summary and "\n" not in cls.summary
        assert all(f.description for f in cls.Config.model_fields.values())


@pytest.mark.slow
def test_curve_events_reach_only_authorized_subscribers(tmp_path: Path) -> None:
    from vidaffect.events.subscribe import iter_events

    for name, folder in (("server", "server"), ("alice", "allowed"), ("mallory", "other")):
        proc = run_cli("keys", str(tmp_path / folder), "--name", name)
        assert proc.returncode == 0, proc.stderr
    sink = ZmqEventsSink(
        ZmqEventsSink.Config(
            endpoint="tcp://127.0.0.1:*",
            curve_secret_key=str(tmp_path / "server" / "server.key_secret"),
            curve_authorized_keys=str(tmp_path / "allowed"),
        )
    )
    sink.open()
    server_key = str(tmp_path / "server" / "server.key")
    got: dict[str, list[dict]] = {"alice": [], "mallory": [], "plain": []}

    def listen(who: str, **keys: str) -> None:
        for _, event in iter_events(sink.endpoint, timeout_ms=3000, **keys):
            got[who].append(event)
            if len(got[who]) >= 3:
                return

    threads = [
        threading.Thread(
            target=listen,
            args=("alice",),
            kwargs={
                "curve_secret_key": str(tmp_path / "allowed" / "alice.key_secret"),
                "curve_server_key": server_key,
            },
        ),
        threading.Thread(
            target=listen,
            args=("mallory",),
            kwargs={
                "curve_secret_key": str(tmp_path / "other" / "mallory.key_secret"),
                "curve_server_key": server_key,
            },
        ),
        threading.Thread(target=listen, args=("plain",)),
    ]
    for t in threads:
        t.start()
    # PUB/SUB delivers only to joined subscribers: publish, whenever they join, until every
    # listener is done (alice after 3 events, the others when nothing has reached them for 3 s)
    deadline, i = time.monotonic() + 30, 0
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        sink.write(frame(i))
        i += 1
        time.sleep(0.02)
    for t in threads:
        t.join(10)
    sink.close()
    assert len(got["alice"]) == 3 and got["alice"][0]["type"] == "frame"
    assert got["mallory"] == [] and got["plain"] == []


def test_curve_options_are_checked() -> None:
    with pytest.raises(ValueError, match="go together"):
        ZmqEventsSink.Config(curve_secret_key=__file__)
    with pytest.raises(ValueError, match="no such folder"):
        ZmqEventsSink.Config(curve_secret_key=__file__, curve_authorized_keys="/no/such/dir")
    with pytest.raises(ValueError, match="holds no secret key"):
        ZmqEventsSink.Config(curve_secret_key=__file__, curve_authorized_keys=str(Path(__file__).parent))


def test_subscriber_skips_malformed_messages() -> None:
    """A PUB socket sending junk, a JSON number and a three-part message between events."""
    from vidaffect.events.subscribe import iter_events

    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    got: list[tuple[str, dict]] = []
    listener = threading.Thread(
        target=lambda: got.extend(iter_events(f"tcp://127.0.0.1:{port}", timeout_ms=1500))
    )
    listener.start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:  # until the subscription has reached us
        pub.send_multipart([b"cam0", b'{"seq": 0}'])
        time.sleep(0.05)
    for parts in (
        [b"cam0", b"\xff not json"],
        [b"cam0", b"42"],
        [b"\xff\xfe", b'{"seq": 9}'],
        [b"cam0", b"{}", b"extra"],
        [b"cam0", b'{"seq": 1}'],
    ):
        pub.send_multipart(parts)
    listener.join(10)
    pub.close()
    assert got and got[-1] == ("cam0", {"seq": 1})
    assert set(map(str, got[:-1])) == {str(("cam0", {"seq": 0}))}  # probes only, no junk


class Publisher:
    """A real PUB socket on 127.0.0.1 that sends ``[stream, {"type": "gap", "seq": n}]`` for several streams,
    round after round, until stopped (so late subscribers still receive)."""

    def __init__(self, streams: list[str]) -> None:
        self.sock = zmq.Context.instance().socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.endpoint = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"
        self.streams, self.stop = streams, threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            for stream in self.streams:
                self.sock.send_multipart([stream.encode(), json.dumps({"type": "gap", "seq": seq}).encode()])
            seq += 1
            time.sleep(0.01)

    def __enter__(self) -> Publisher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.slow
def test_a_topic_is_a_whole_stream_id_not_a_prefix() -> None:
    from vidaffect.events.subscribe import iter_events

    with Publisher(["cam10", "cam1", "cam1x", "cam2"]) as pub:
        got = []
        for stream, _ in iter_events(pub.endpoint, "cam1", timeout_ms=5000):
            got.append(stream)
            if len(got) == 20:
                break
        assert got == ["cam1"] * 20
        proc = run_cli("events", pub.endpoint, "--topic", "cam1", "--count", "20", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["seq"] >= 0 for line in proc.stdout.splitlines()] == [True] * 20


def _write_clip(tmp_path: Path, name: str, size: tuple[int, int] = (97, 64), **options: object) -> Path:
    sink = VideoSink(VideoSink.Config(path=str(tmp_path / name), fps=25, **options))
    sink.open()
    for i in range(30):
        img = np.full((size[1], size[0], 3), 8 * i, np.uint8)
        sink.write(Frame(img, "s", i, 0, meta={"faces": [{"bbox": [10, 10, 40, 40], "score": 0.9}]}))
    sink.close()
    return tmp_path / name


def test_video_sink_writes_h264_by_default_and_mp4v_on_request(tmp_path: Path) -> None:
    import av

    h264 = _write_clip(tmp_path, "a.mp4")  # odd width: padded to even for yuv420p
    with av.open(str(h264)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 98, 64)
    assert video_frames(h264) == (30, (98, 64))
    mp4v = _write_clip(tmp_path, "b.mp4", codec="mp4v")
    with av.open(str(mp4v)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert video_frames(mp4v)[0] == 30
    assert video_frames(_write_clip(tmp_path, "c.avi"))[0] == 30  # auto: MJPG in an AVI


def test_video_sink_h264_needs_pyav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidaffect_plugins.sinks import encoders

    monkeypatch.setattr(encoders, "h264_available", lambda: False)
    assert video_frames(_write_clip(tmp_path, "a.mp4"))[0] == 30  # auto falls back to mp4v
    with pytest.raises(VidaffectError, match="codec 'h264' needs PyAV with libx264"):
        _write_clip(tmp_path, "b.mp4", codec="h264")


def test_video_sink_reports_a_full_disk(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux) to fake a full disk")
    sink = VideoSink(VideoSink.Config(path="/dev/full", codec="h264"))
    sink.open()
    with pytest.raises(VidaffectError, match="cannot (open|write) /dev/full"):
        for i in range(200):
            sink.write(Frame(np.random.default_rng(i).integers(0, 255, (240, 320, 3), np.uint8), "s", i, 0))
        sink.close()


@NEEDS_BROWSER
def test_the_default_video_plays_in_a_browser(tmp_path: Path) -> None:
    """Served over HTTP to a headless Chromium: the default H.264 file plays (its size and
    duration are read), OpenCV's mp4v does not (MEDIA_ERR_SRC_NOT_SUPPORTED)."""
    _write_clip(tmp_path, "h264.mp4", size=(96, 64))
    _write_clip(tmp_path, "mp4v.mp4", size=(96, 64), codec="mp4v")
    (tmp_path / "index.html").write_text("<!doctype html><title>clips</title><body></body>")
    with http_server(tmp_path) as url, chromium_page() as page:
        page.goto(f"{url}/index.html")
        played = page.evaluate(PLAY_VIDEO, f"{url}/h264.mp4")
        refused = page.evaluate(PLAY_VIDEO, f"{url}/mp4v.mp4")
    assert played["width"] == 96 and played["height"] == 64
    assert played["duration"] == pytest.approx(30 / 25, abs=0.05)
    assert refused == {"error": 4}


def test_images_sink_names_files_after_photos_and_frames(tmp_path: Path) -> None:
    from vidaffect_plugins.sinks.images import ImagesSink

    sink = ImagesSink(ImagesSink.Config(folder=str(tmp_path / "out")))
    sink.streams = ["photos", "cam1"]
    sink.open()
    img = np.full((60, 80, 3), 40, np.uint8)
    face = {"bbox": [10, 10, 50, 50], "score": 0.9}
    sink.write(Frame(img, "photos", 0, 0, meta={"image_file": "trip/beach.png", "faces": [face]}))
    sink.write(Frame(img, "photos", 1, 0, meta={"image_file": "../escape.jpg", "faces": []}))
    sink.write(Frame(img, "cam1", 7, 0, meta={"faces": [face]}))
    sink.close()
    out = tmp_path / "out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "cam1/cam1-000007.jpg",
        "photos-000001.jpg",
        "trip/beach.png",
    ]
    drawn = cv2.imread(str(out / "trip" / "beach.png"))
    assert drawn.shape == img.shape and tuple(drawn[30, 10]) == FALLBACK_COLOUR  # the box, lossless
    assert sink.files_written == 3
    png = ImagesSink(ImagesSink.Config(folder=str(tmp_path / "png"), format="png"))
    png.open()
    png.write(Frame(img, "s", 0, 0, meta={"image_file": "a.jpg"}))
    assert (tmp_path / "png" / "a.png").is_file()


def test_images_sink_reports_an_unwritable_folder(tmp_path: Path) -> None:
    from vidaffect_plugins.sinks.images import ImagesSink

    blocker = tmp_path / "file"
    blocker.write_text("x")
    sink = ImagesSink(ImagesSink.Config(folder=str(blocker / "sub")))
    with pytest.raises(VidaffectError, match="images sink: cannot create folder"):
        sink.open()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 64 KiB tmpfs mounted on ``tmp_path/disk`` for the test (needs root)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"needs root to mount a small tmpfs (a real full disk): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)  # detached even if a file is open


def test_jsonl_sink_on_a_full_disk_leaves_whole_lines_only(small_disk: Path) -> None:
    path = small_disk / "events.jsonl"
    sink = JsonlSink(JsonlSink.Config(path=str(path), flush_every=3))
    sink.open()
    faces = [{"bbox": [1.0, 2.0, 30.0, 40.0], "score": 0.99, "landmarks": [[5.0, 6.0]] * 5}] * 4
    try:
        with pytest.raises(VidaffectError, match=f"jsonl sink: cannot write {path}: No space left on device"):
            for i in range(100_000):
                sink.write(Frame(np.zeros((8, 8, 3), np.uint8), "s", i, 0, meta={"faces": faces}))
    finally:
        sink.close()
    data = path.read_bytes()
    assert len(data) > 10_000 and data.endswith(b"\n")
    seqs = [json.loads(line)["seq"] for line in data.splitlines()]
    assert seqs == list(range(len(seqs)))  # whole lines, in order, none cut


KILLED_WRITER = """
import sys
import numpy as np
from vidaffect.frames import Frame
from vidaffect_plugins.sinks.video import VideoSink

sink = VideoSink(VideoSink.Config(path=sys.argv[1], fps=25))
sink.open()
for i in range(100_000):
    sink.write(Frame(np.full((96, 128, 3), (3 * i) % 255, np.uint8), "s", i, 0))
    print(i + 1, flush=True)
"""


def test_a_killed_video_sink_leaves_a_playable_file(tmp_path: Path) -> None:
    """SIGKILL while writing: the fragmented MP4 plays up to its last whole fragment (a
    keyframe every 2 s, 50 frames at 25 fps), where an ordinary MP4 would have no index."""
    import signal
    import subprocess

    path = tmp_path / "rec.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        written = 0
        while written < 180:
            written = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        proc.stdout.close()
    readable = video_frames(path)[0]
    assert written - 60 <= readable <= written and readable >= 100
