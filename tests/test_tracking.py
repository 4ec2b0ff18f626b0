"""Face tracking and per-track smoothing: the policy on synthetic boxes, then real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import read_events, run_cli, write_config

from vidaffect.analytics.smoothing import Smoother
from vidaffect.analytics.tracking import StreamTracker
from vidaffect.frames import Detections, Frame

VIDEOS = DATA / "videos"
SETTINGS = {"detect_every": 5, "lost_after_s": 0.5, "min_iou": 0.2}
LABELS = ["angry", "happy", "neutral"]


def frame(i: int, fps: float = 30.0, size: int = 400) -> Frame:
    return Frame(np.zeros((size, size, 3), np.uint8), "s", i, 0, pts_ms=i * 1000 / fps)


def box_at(i: int) -> list[float]:
    x = 50 + 3 * i  # moves 3 px per frame to the right
    return [x, 100, x + 80, 180]


def dets(*boxes: list[float], score: float = 0.99) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score, np.float32))


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("score", [0.99, 0.3])  # 0.3: Haar's scores are often below 0.6
def test_detects_to_confirm_then_every_n_and_predicts_between(score: float) -> None:
    st = StreamTracker(SETTINGS, fps=30)
    detected = []
    for i in range(30):
        f = frame(i)
        need = st.needs_detection(f)
        detected.append(need)
        st.update(f, dets(box_at(i), score=score) if need else None)
        assert len(f.faces) == 1
        assert f.faces[0]["track_id"] == 0  # from its first detection, for good
        if not need and i > 5:
            assert iou(f.faces[0]["bbox"], box_at(i)) > 0.8  # the Kalman prediction follows
    assert detected[:2] == [True, True]  # a new track is detected again to confirm it
    assert sum(detected) <= 2 + 30 // SETTINGS["detect_every"] + 1
    assert st.detections_run == sum(detected)


def test_a_new_face_has_its_id_on_its_first_frame() -> None:
    """ByteTrack confirms a track on its second detection; the face's id is the same on both."""
    st = StreamTracker(SETTINGS, fps=30)
    f = frame(0)
    assert st.update(f, dets(box_at(0), [300, 300, 360, 360])) == []
    assert [face["track_id"] for face in f.faces] == [0, 1] and f.meta["detected"] is True
    assert st.needs_detection(frame(1))  # to confirm them
    f = frame(1)
    st.update(f, dets(box_at(1), [300, 300, 360, 360]))
    assert [face["track_id"] for face in f.faces] == [0, 1]
    f = frame(2)
    assert st.update(f, dets(box_at(2), [10, 300, 60, 350])) == []  # a third face appears
    assert [face["track_id"] for face in f.faces] == [0, 2]  # face 1 is missed, not ended yet


def test_a_face_seen_once_ends_at_the_next_detection() -> None:
    """A one-frame detection (a false positive) is dropped by ByteTrack unconfirmed: its id
    ends (so a change event closes it), and no box is ever predicted for it."""
    st = StreamTracker(SETTINGS, fps=30)
    for i in range(3):
        st.update(frame(i), dets(box_at(i)))
    f = frame(3)
    assert st.update(f, dets(box_at(3), [300, 300, 360, 360])) == []
    assert [face["track_id"] for face in f.faces] == [0, 1]
    ended: list[int] = []
    for i in (4, 5):  # ByteTrack drops it after the second detection without it
        assert st.needs_detection(frame(i))  # detections go on while it is unconfirmed
        f = frame(i)
        ended += st.update(f, dets(box_at(i)))
        assert [face["track_id"] for face in f.faces] == [0]
    assert ended == [1]
    f = frame(6)
    assert not st.needs_detection(f)
    st.update(f, None)
    assert [face["track_id"] for face in f.faces] == [0]


def test_missed_detection_triggers_a_detection_next_frame() -> None:
    st = StreamTracker({**SETTINGS, "detect_every": 10}, fps=30)
    for i in range(3):
        st.update(frame(i), dets(box_at(i)))
    f = frame(3)
    st.update(f, dets())  # the detector missed the face
    assert f.faces == []
    assert st.needs_detection(frame(4))


def test_track_ends_after_lost_after_s_and_a_returning_face_gets_a_new_id() -> None:
    st = StreamTracker(SETTINGS, fps=30)
    for i in range(5):
        st.update(frame(i), dets(box_at(i)))
    ended: list[int] = []
    i = 5
    while not ended and i < 60:  # the face is gone
        ended = st.update(frame(i), dets() if st.needs_detection(frame(i)) else None)
        i += 1
    assert ended == [0]
    assert (i - 5) / 30 <= SETTINGS["lost_after_s"] + 0.2
    for j in range(i, i + 3):
        f = frame(j)
        st.update(f, dets(box_at(0)))
    assert f.faces[0]["track_id"] not in (None, 0)


def test_restarting_timestamps_start_a_new_tracker() -> None:
    st = StreamTracker(SETTINGS, fps=30)
    for i in range(3):
        st.update(frame(i), dets(box_at(i)))
    assert st.needs_detection(frame(0))  # time went back (a looping file)
    assert st.update(frame(0), dets(box_at(0))) == [0]
    for i in range(1, 4):  # the restarted file tracks as before: one new id, kept
        f = frame(i)
        assert st.update(f, dets(box_at(i))) == []
        assert f.faces[0]["track_id"] == 1


def test_capture_clock_stepping_back_keeps_the_tracks() -> None:
    """Camera frames are timed by the wall clock, which NTP or a resumed VM can step back."""
    st = StreamTracker(SETTINGS, fps=30)
    t0 = 1_700_000_000_000_000_000
    clock = [t0 + i * 33_000_000 for i in range(4)] + [t0 - 200_000_000 + i * 33_000_000 for i in range(4)]
    for i, ts in enumerate(clock):
        f = Frame(np.zeros((400, 400, 3), np.uint8), "s", i, ts)  # pts_ms None, as a camera's
        assert st.update(f, dets(box_at(i))) == []
        if i >= 1:
            assert f.faces[0]["track_id"] == 0
    assert not st.needs_detection(Frame(np.zeros((400, 400, 3), np.uint8), "s", 8, t0 - 50_000_000))


def test_ema_smoothing_and_change_events() -> None:
    sm = Smoother("ema", alpha=0.5)
    seq = [[0.1, 0.6, 0.3], [0.1, 0.6, 0.3], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]]
    changes = []
    expected = np.array(seq[0])
    for i, probs in enumerate(seq):
        f = Frame(
            np.zeros((8, 8, 3), np.uint8),
            "s",
            i,
            0,
            meta={
                "labels": LABELS,
                "faces": [
                    {
                        "bbox": [0, 0, 4, 4],
                        "score": 1.0,
                        "track_id": 7,
                        "emotion": {"label": "x", "score": 0, "probs": probs},
                    }
                ],
            },
        )
        changes += sm.apply(f)
        if i:
            expected = 0.5 * np.array(probs) + 0.5 * expected
        np.testing.assert_allclose(f.faces[0]["smoothed"]["probs"], expected, atol=1e-4)
    # after one frame of "neutral" the EMA still says happy (0.35 vs 0.55); after two, neutral
    assert [(c["from"], c["to"]) for c in changes] == [(None, "happy"), ("happy", "neutral")]
    end = Frame(np.zeros((8, 8, 3), np.uint8), "s", 9, 0, meta={"labels": LABELS, "tracks_ended": [7]})
    assert sm.apply(end) == [{"track_id": 7, "from": "neutral", "to": None, "score": None}]
    assert sm.end_stream("s") == []


def test_hysteresis_keeps_a_label_until_another_beats_it_by_the_margin() -> None:
    def labels_for(hysteresis: float | None) -> list[str]:
        sm = Smoother("none", hysteresis=hysteresis)
        out = []
        for i, probs in enumerate([[0.1, 0.5, 0.4], [0.1, 0.42, 0.48], [0.1, 0.35, 0.55], [0.1, 0.6, 0.3]]):
            f = Frame(
                np.zeros((8, 8, 3), np.uint8),
                "s",
                i,
                0,
                meta={
                    "labels": LABELS,
                    "faces": [
                        {
                            "bbox": [0, 0, 4, 4],
                            "score": 1.0,
                            "track_id": 1,
                            "emotion": {"label": "x", "score": 0, "probs": probs},
                        }
                    ],
                },
            )
            sm.apply(f)
            out.append(f.faces[0]["smoothed"]["label"])
            assert f.faces[0]["smoothed"]["score"] == probs[LABELS.index(out[-1])]
        return out

    assert labels_for(0.0) == ["happy", "neutral", "neutral", "happy"]
    # 0.06 ahead is not enough, 0.2 is; then happy must beat neutral by 0.1 again
    assert labels_for(0.1) == ["happy", "happy", "neutral", "happy"]
    assert labels_for(0.3) == ["happy"] * 4
    # unset: raw labels stay raw with "none"; the measured default otherwise
    assert labels_for(None) == labels_for(0.0)
    assert Smoother("ema").hysteresis == Smoother("window").hysteresis == 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "median"},
        {"alpha": 0.0},
        {"alpha": 1.5},
        {"window": 0},
        {"hysteresis": -0.1},
        {"hysteresis": 1.0},
    ],
)
def test_smoother_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="smoothing"):
        Smoother(**kwargs)


def test_window_smoothing_averages_the_last_frames() -> None:
    sm = Smoother("window", window=2)
    faces = []
    for i, probs in enumerate([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]):
        f = Frame(
            np.zeros((8, 8, 3), np.uint8),
            "s",
            i,
            0,
            meta={
                "labels": LABELS,
                "faces": [
                    {
                        "bbox": [0, 0, 4, 4],
                        "score": 1.0,
                        "track_id": 1,
                        "emotion": {"label": "x", "score": 0, "probs": probs},
                    }
                ],
            },
        )
        sm.apply(f)
        faces.append(f.faces[0]["smoothed"]["probs"])
    assert faces[2] == [0.0, 0.5, 0.5]
    assert [c["to"] for c in sm.end_stream("s")] == [None]


def test_untracked_faces_are_not_smoothed() -> None:
    sm = Smoother("ema")
    f = Frame(
        np.zeros((8, 8, 3), np.uint8),
        "s",
        0,
        0,
        meta={
            "labels": LABELS,
            "faces": [
                {
                    "bbox": [0, 0, 4, 4],
                    "score": 1.0,
                    "track_id": None,
                    "emotion": {"label": "happy", "score": 1, "probs": [0, 1, 0]},
                }
            ],
        },
    )
    assert sm.apply(f) == [] and "smoothed" not in f.faces[0]
    with pytest.raises(ValueError, match="ema, window or none"):
        Smoother("median")


def run_tracked(tmp_path: Path, source: dict, **tracking: object) -> tuple[list[dict], list[dict], dict]:
    out = tmp_path / "events.jsonl"
    metrics = tmp_path / "metrics.json"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"metrics_file": str(metrics), "status": False},
            "source": source,
            "detector": {"type": "mtcnn", "max_side": 640},
            "classifier": {"type": "fer"},
            "tracking": {"detect_every": 5, **tracking},
            "sinks": [{"type": "jsonl", "path": str(out)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status")
    assert proc.returncode == 0, proc.stderr
    return read_events(out), read_events(out, "change"), json.loads(metrics.read_text())


@pytest.mark.slow
@NEEDS_DATA
def test_track_id_is_stable_on_a_single_face_clip(tmp_path: Path) -> None:
    frames, changes, metrics = run_tracked(
        tmp_path, {"type": "video", "uri": str(VIDEOS / "liveportrait_d3.mp4")}
    )
    ids = {f["track_id"] for e in frames[1:] for f in e["faces"]}
    assert len(ids) == 1 and None not in ids
    assert sum(bool(e["faces"]) for e in frames) >= 0.95 * len(frames)
    assert metrics["detector"]["detected"] <= 0.4 * len(frames)  # tracked in between
    assert all(
        f["smoothed"]["label"] in f["smoothed"]["probs"]
        for e in frames
        for f in e["faces"]
        if f["track_id"] is not None
    )
    assert changes[0]["from"] is None and changes[-1]["to"] is None  # first label ... track end


@pytest.mark.slow
@NEEDS_DATA
def test_face_that_leaves_and_returns_ends_its_track(tmp_path: Path) -> None:
    # pyfeat_face_noface.mov: a face for ~2.7 s, then an empty scene; looping brings it back
    frames, changes, _ = run_tracked(
        tmp_path,
        {
            "type": "video",
            "uri": str(VIDEOS / "pyfeat_face_noface.mov"),
            "loop": True,
            "max_frames": 169 + 40,
        },
    )
    first = {f["track_id"] for e in frames[1:60] for f in e["faces"]}
    assert len(first) == 1 and None not in first
    (old,) = first
    assert any(e["faces"] == [] for e in frames[80:160])
    ended = [c for c in changes if c["track_id"] == old and c["to"] is None]
    assert len(ended) == 1 and ended[0]["seq"] < 169
    returned = {f["track_id"] for e in frames[175:] for f in e["faces"]}
    assert returned and old not in returned


def scene(i: int, colour: tuple[int, int, int]) -> Frame:
    rng = np.random.default_rng(i)
    img = np.clip(rng.normal(colour, 12, (200, 200, 3)), 0, 255).astype(np.uint8)
    return Frame(img, "s", i, 0, pts_ms=i * 1000 / 30)


def test_a_shot_change_ends_every_track_and_starts_new_ones() -> None:
    st = StreamTracker({**SETTINGS, "cut_threshold": 27.0}, fps=30)
    box = [60, 60, 120, 130]
    ids, ended = [], []
    for i in range(40):  # a cut at frame 20: another place, the face at the same spot
        f = scene(i, (40, 90, 160) if i < 20 else (200, 180, 40))
        ended.append(st.update(f, dets(box) if st.needs_detection(f) else None))
        ids.append(f.faces[0]["track_id"])
    assert set(ids[:20]) == {0} and set(ids[20:]) == {1}
    assert ended[20] == [0] and not any(ended[:20] + ended[21:])
    assert st.shots is not None and st.shots.cuts == 1
    off = StreamTracker({**SETTINGS, "cut_threshold": None}, fps=30)
    for i in range(40):  # without cut detection the id passes on to the next shot's face
        f = scene(i, (40, 90, 160) if i < 20 else (200, 180, 40))
        off.update(f, dets(box) if off.needs_detection(f) else None)
    assert f.faces[0]["track_id"] == 0


@pytest.mark.slow
@NEEDS_DATA
def test_no_track_id_crosses_a_cut_between_two_people(tmp_path: Path) -> None:
    """Two single-face clips joined by a hard cut, the faces at about the same place: the
    first person's track ends at the cut and the second person gets a new id; without cut
    detection ByteTrack would carry the id over (checked too, so the clip proves the point)."""
    import cv2

    joined = tmp_path / "joined.mp4"
    writer = cv2.VideoWriter(str(joined), cv2.VideoWriter_fourcc(*"mp4v"), 25, (512, 512))
    for name, n in (("liveportrait_d3.mp4", 60), ("liveportrait_d0.mp4", 60)):
        cap = cv2.VideoCapture(str(VIDEOS / name))
        for _ in range(n):
            ok, img = cap.read()
            assert ok
            writer.write(cv2.resize(img, (512, 512)))
    writer.release()
    runs = {}
    for threshold in (27.0, None):
        out = tmp_path / str(threshold)
        out.mkdir()
        frames, changes, _ = run_tracked(out, {"type": "video", "uri": str(joined)}, cut_threshold=threshold)
        runs[threshold] = (
            {f["track_id"] for e in frames[:60] for f in e["faces"]},
            {f["track_id"] for e in frames[60:] for f in e["faces"]},
            changes,
        )
    before, after, changes = runs[27.0]
    assert before and after and not before & after
    assert any(c["seq"] == 60 and c["to"] is None and c["track_id"] in before for c in changes)
    before, after, _ = runs[None]
    assert before & after  # the same id on both people
