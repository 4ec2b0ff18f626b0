"""Benchmarks' own logic: training throughput (specs, a tiny real measurement, bad input),
face matching, and the detector benchmark on real frames."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import DATA, NEEDS_DATA

from benchmarks import detectors, smoothing, train_speed
from benchmarks.common import match_boxes, parse_spec
from vidaffect.frames import Detections
from vidaffect.models.meta import read_meta
from vidaffect.models.zoo import shipped_models


@pytest.mark.parametrize("module", ["pipeline", "live", "smoothing", "soak", "transport", "rtsp_latency"])
def test_benchmarks_that_run_pipelines_import_no_torch(module: str) -> None:
    """A pipeline's stage processes are spawned and re-import the main module: a torch import
    there would cost every light stage (source, sinks) a few hundred MiB and skew the memory
    figures."""
    code = f"import sys, benchmarks.{module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_spec_reads_shipped_options_and_parses_arch_strings() -> None:
    name, arch, options = train_speed.model_spec("resnet18")
    meta = read_meta(shipped_models()["resnet18"])
    assert (name, arch, options) == ("resnet18", meta.arch, dict(meta.arch_kwargs))
    assert options  # the shipped ResNet is not the plain architecture
    spec = "resnet18:width=48,deep_stem=true"
    assert train_speed.model_spec(spec) == (spec, "resnet18", {"width": 48, "deep_stem": True})
    assert train_speed.model_spec("lenet5") == ("lenet5", "lenet5", {})
    assert train_speed.model_spec("default")[1:] == (arch, options)


def test_training_steps_update_the_model_in_both_memory_formats() -> None:
    for channels_last in (False, True):
        model, step = train_speed.training_step("resnet18", {"width": 8}, channels_last, batch_size=8)
        before = [p.detach().clone() for p in model.parameters()]
        step()
        assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    rates = train_speed.images_per_second("resnet18", {"width": 8}, batch_size=8, steps=2, rounds=2, warmup=1)
    assert set(rates) == {False, True} and all(0 < r < float("inf") for r in rates.values())
    assert set(train_speed.images_per_second("lenet5", {}, batch_size=8, steps=1, rounds=1, warmup=1)) == {
        False
    }


def test_prints_a_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_speed, "set_threads", lambda n: None)  # keep the session's threads
    train_speed.main(["resnet18:width=8", "lenet5", "--batch-size", "4", "--steps", "1", "--rounds", "1"])
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("| resnet18")]
    assert [line.split("|")[3].strip() for line in lines] == ["contiguous", "channels_last"]
    assert lines[0].split("|")[6].strip() == "1.00" and float(lines[1].split("|")[4]) > 0
    narrow = [line.split("|") for line in out if line.startswith("| lenet5")]  # conv1 has 6 channels
    assert [cells[3].strip() for cells in narrow] == ["contiguous", "channels_last"]
    assert narrow[1][4].strip() == "-" and "not run" in narrow[1][6]


def test_rejects_architectures_that_are_not_face_models(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        train_speed.main(["emotic"])
    assert "not a single-image architecture: emotic" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_speed.main(["nonet:width=3"])
    assert "nonet" in capsys.readouterr().err


def test_match_boxes_is_greedy_one_to_one_by_iou() -> None:
    ref = [[0, 0, 10, 10], [20, 0, 30, 10]]
    other = [[21, 0, 31, 10], [1, 0, 11, 10], [0, 0, 9, 10], [100, 100, 110, 110]]
    assert sorted(match_boxes(ref, other)) == [(0, 2), (1, 0)]  # [0,0,9,10] overlaps ref 0 most
    assert match_boxes(ref, other, min_iou=0.95) == []
    assert match_boxes([], other) == [] and match_boxes(ref, []) == []


def test_fit_only_shrinks() -> None:
    img = np.zeros((480, 1280, 3), np.uint8)
    assert detectors.fit(img, 640).shape == (240, 640, 3)
    assert detectors.fit(img, 2000) is img


def test_specs_parse_json_values_and_bracketed_lists() -> None:
    assert parse_spec("mtcnn:preset=fast,max_side=320,thresholds=[0.6,0.7,0.7]") == (
        "mtcnn",
        {"preset": "fast", "max_side": 320, "thresholds": [0.6, 0.7, 0.7]},
    )
    assert parse_spec("haar") == ("haar", {})
    assert detectors.make_detector("haar:min_neighbors=50,scale_factor=1.2").config.min_neighbors == 50


def test_detector_table_recall_and_speed_are_against_the_first_detector() -> None:
    ref = [Detections(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32), np.ones(2, np.float32))]
    half = [Detections(np.array([[1, 0, 11, 10], [50, 50, 60, 60]], np.float32), np.ones(2, np.float32))]
    rows = detectors.table_rows({"ref": [40.0, 60.0], "other": [10.0, 30.0]}, {"ref": ref, "other": half})
    assert rows[0][1:] == ["50.0", "59.0", 2, "100%", "1.00"]
    assert rows[1][0] == "other" and rows[1][3:] == [2, "50%", "2.50"]  # one of two faces, 50 vs 20 ms


@NEEDS_DATA
def test_detector_benchmark_on_real_frames(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(detectors, "set_threads", lambda n: None)  # keep the session's threads
    clip = DATA / "videos" / "liveportrait_d3.mp4"  # one face in every frame
    detectors.main(
        [
            "mtcnn",
            "haar",
            "--videos",
            str(clip),
            "--per-video",
            "3",
            "--photos",
            "",
            "--rounds",
            "1",
            "--max-side",
            "256",
        ]
    )
    out = capsys.readouterr().out
    assert "3 frames (256x256)" in out
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in out.splitlines()
        if line.startswith(("| mtcnn", "| haar"))
    }
    assert set(rows) == {"mtcnn", "haar"}
    assert rows["mtcnn"][2] == "3"  # MTCNN finds the face in each of the three frames
    assert float(rows["haar"][0]) > 0 and float(rows["haar"][4]) > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["haar", "--videos", "none.mp4"], "video not found"),
        (["haar", "--rounds", "0"], "must be at least 1"),
        (["nodetector", "--videos", "--photos", str(DATA / "photos")], "unknown detector 'nodetector'"),
        (["haar:colour=1", "--videos", "--photos", str(DATA / "photos")], "colour"),
        (["haar", "--videos", "--photos", ""], "no frames"),
    ],
)
def test_detector_benchmark_rejects_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--photos" in argv and argv[-1] and not (DATA / "photos").is_dir():
        pytest.skip(f"needs the shared data folder's photos (set VIDAFFECT_DATA; looked in {DATA})")
    with pytest.raises(SystemExit):
        detectors.main(argv)
    assert message in capsys.readouterr().err


def test_smoothing_reference_is_a_centred_mean_and_lag_counts_frames_to_catch_up() -> None:
    probs = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] + [[0.9, 0.1]] * 2 + [[0.1, 0.9]] * 5)
    ref = smoothing.reference_labels(probs, half=1)
    assert ref.tolist() == [0] * 7 + [1] * 5  # the single-frame blip at 4 is averaged away
    smoothed = np.array([0] * 9 + [1] * 3)
    assert smoothing.lags(smoothed, ref) == ([2], 1)  # label 1 from frame 7, caught up at 9
    assert smoothing.lags(np.zeros(12, np.int64), ref) == ([], 1)


def test_smoothing_rows_show_less_flicker_with_hysteresis() -> None:
    rng = np.random.default_rng(0)
    p = np.clip(np.array([0.5, 0.5]) + rng.normal(0, 0.15, (300, 1)) * [1, -1], 0.01, None)
    tracks = [(p / p.sum(1, keepdims=True), 30.0)]  # two labels in a near tie: flicker
    rows = {
        r[0]: r
        for r in (
            smoothing.score(tracks, ["a", "b"], spec, 1.0)
            for spec in ("none", "ema:alpha=0.2,hysteresis=0.1")
        )
    }
    assert float(rows["none"][1]) > 3 * float(rows["ema:alpha=0.2,hysteresis=0.1"][1])
    ref = smoothing.score(tracks, ["a", "b"], smoothing.REFERENCE, 1.0)
    assert ref[2] == "100.0%" and float(ref[1]) < float(rows["none"][1])


@pytest.mark.slow
@NEEDS_DATA
def test_smoothing_benchmark_on_a_real_clip(capsys: pytest.CaptureFixture[str]) -> None:
    clip = DATA / "videos" / "liveportrait_d11.mp4"
    smoothing.main([str(clip), "--settings", "none", "ema:alpha=0.2,hysteresis=0.1", "--reference-s", "1"])
    out = capsys.readouterr().out
    assert "1 tracks" in out and "from 1 clips" in out
    rows = [line for line in out.splitlines() if line.startswith(("| none", "| ema"))]
    assert len(rows) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["none.mp4"], "video not found"),
        (["--settings", "ema:alpha=2"], "alpha"),
        (["--settings", "ema:colour=1"], "colour"),
    ],
)
def test_smoothing_benchmark_rejects_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if not argv[0].endswith(".mp4") and not (DATA / "videos").is_dir():
        pytest.skip(f"needs the shared data folder's videos (set VIDAFFECT_DATA; looked in {DATA})")
    with pytest.raises(SystemExit):
        smoothing.main(argv)
    assert message in capsys.readouterr().err


def test_pipeline_agreement_and_the_reference_confidence_split() -> None:
    from benchmarks.pipeline import agreement, reference_confidence

    def face(x: float, label: str, tracked: bool = False, top: float = 0.6) -> dict:
        return {"bbox": [x, 0, x + 10, 10], "label": label, "tracked": tracked, "probs": [1 - top, top]}

    naive = [[face(0, "happy", top=0.9), face(50, "sad", top=0.55)], [face(0, "happy", top=0.7)]]
    ours = [
        [face(1, "happy", tracked=True), face(50, "happy", tracked=True)],
        [face(0, "happy"), face(80, "sad")],
    ]  # the face at x=80 has no naive match
    assert agreement(naive, ours) == (pytest.approx(2 / 3), 3, 3)
    assert agreement(naive, ours, tracked=True) == (0.5, 2, 3)
    assert agreement(naive, ours, tracked=False) == (1.0, 1, 3)
    sure = reference_confidence(naive, ours, tracked=True)
    assert sure[True] == pytest.approx((0.9, 0.8, 1))
    assert sure[False] == pytest.approx((0.55, 0.1, 1))
    assert set(reference_confidence(naive, ours, tracked=False)) == {True}
