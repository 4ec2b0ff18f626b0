"""Work done once per frame: smoothing before the sinks, pixels only to sinks that read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import read_events, run_cli, write_config

from vidaffect.config import validate
from vidaffect.frames import Frame
from vidaffect.runtime.codec import decode, encode_frame
from vidaffect.runtime.graph import build_specs

CLIP = DATA / "videos" / "liveportrait_d0.mp4"


def test_a_frame_without_pixels_keeps_its_size_and_meta() -> None:
    img = np.full((720, 1280, 3), 7, np.uint8)
    meta = {"faces": [{"bbox": [1.0, 2.0, 30.0, 40.0], "score": 0.9}], "fps": 25.0}
    parts = encode_frame(Frame(img, "cam0", 3, 10, 120.0, meta), pixels=False)
    assert len(parts) == 1 and len(parts[0]) < 200  # the header alone, no 2.7 MB buffer
    _, frame = decode(parts)
    assert frame is not None and frame.size == (1280, 720) and frame.meta == meta
    assert frame.image.nbytes == 720 * 1280 * 3 and frame.image.base is not None
    assert not frame.image.flags.writeable and int(frame.image.max()) == 0


def test_smoothing_runs_in_the_last_stage_and_event_sinks_get_no_pixels() -> None:
    cfg = validate(
        {
            "source": {"type": "video", "uri": __file__},
            "detector": {"type": "haar"},
            "classifier": {"type": "fer", "workers": 2},
            "tracking": {"detect_every": 3},
            "sinks": [{"type": "record", "path": "a"}, {"type": "jsonl", "path": "b"}],
        },
        "p.yaml",
    )
    specs = {(ws.stage.name, ws.worker): vars(ws.spec) for ws in build_specs(cfg, str, "c", "u")}
    assert specs[("detector", 0)]["tracking"] and not specs[("detector", 0)]["smoothing"]
    assert all(specs[("classifier", w)]["smoothing"] for w in (0, 1))
    assert not any(specs[(s.name, 0)]["smoothing"] or specs[(s.name, 0)]["tracking"] for s in cfg.sinks)
    # a stream keeps to one worker of each processing stage (its tracker, its smoothing state)
    assert specs[("source", 0)]["sticky"] and specs[("detector", 0)]["sticky"]
    assert not specs[("classifier", 0)]["sticky"]
    assert specs[("classifier", 0)]["outputs_pixels"] == (True, False)  # record reads pixels; jsonl not


@pytest.mark.slow
@NEEDS_DATA
def test_every_sink_gets_the_same_smoothed_labels(tmp_path: Path) -> None:
    """A live run where one sink falls behind and misses frames: on the frames both sinks got,
    the smoothed labels and scores agree exactly (smoothed once, upstream, for every frame);
    when each sink smoothed only the frames it saw, they drifted apart."""
    events, record = tmp_path / "events.jsonl", tmp_path / "record.txt"
    cfg = write_config(
        tmp_path,
        {
            "pipeline": {"status": False},
            "source": {"type": "fake_camera", "uri": str(CLIP), "max_frames": 125, "resize": 320},
            "detector": {"type": "haar"},
            "classifier": {"type": "fer"},
            "tracking": {"detect_every": 2, "alpha": 0.2},
            "sinks": [
                {"type": "jsonl", "path": str(events)},
                {"type": "record", "path": str(record), "smoothed": True, "delay_s": 0.1},
            ],
        },
    )
    proc = run_cli("run", str(cfg), "--no-report", timeout=300)
    assert proc.returncode == 0, proc.stderr
    by_events = {
        e["seq"]: {f["track_id"]: (f["smoothed"]["label"], f["smoothed"]["score"]) for f in e["faces"]}
        for e in read_events(events)
    }
    by_record: dict[int, dict[int, tuple[str, float]]] = {}
    for line in record.read_text().splitlines():
        if line.endswith(" EOS"):
            continue
        _, seq, _, *faces = line.split()
        by_record[int(seq)] = {
            int(t): (label, float(score)) for t, label, score in (f.split(":") for f in faces)
        }
    assert len(by_record) < len(by_events)  # the slow sink missed frames
    common = sorted(set(by_record) & set(by_events))
    assert len(common) >= 20 and sum(len(by_record[s]) for s in common) >= 20  # faces were smoothed
    assert all(by_record[s] == by_events[s] for s in common), next(
        (s, by_record[s], by_events[s]) for s in common if by_record[s] != by_events[s]
    )
