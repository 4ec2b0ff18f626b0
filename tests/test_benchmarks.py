"""Benchmarks' own logic: training throughput (specs, a tiny real measurement, bad input),
face matching, and the detector benchmark on real frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, NEEDS_DATA

from benchmarks import detectors, train_speed
from benchmarks.common import match_boxes
from vidaffect.models.meta import read_meta
from vidaffect.models.zoo import shipped_models


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
        model, step = train_speed.training_step("lenet5", {}, channels_last, batch_size=8)
        before = [p.detach().clone() for p in model.parameters()]
        step()
        assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    rates = train_speed.images_per_second("lenet5", {}, batch_size=8, steps=2, rounds=2, warmup=1)
    assert set(rates) == {False, True} and all(0 < r < float("inf") for r in rates.values())


def test_prints_a_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_speed, "set_threads", lambda n: None)  # keep the session's threads
    train_speed.main(["lenet5", "--batch-size", "4", "--steps", "1", "--rounds", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| lenet5")]
    assert [line.split("|")[3].strip() for line in lines] == ["contiguous", "channels_last"]
    assert lines[0].split("|")[6].strip() == "1.00"


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


@NEEDS_DATA
def test_detector_benchmark_on_real_frames(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detectors, "set_threads", lambda n: None)  # keep the session's threads
    clip = DATA / "videos" / "liveportrait_d3.mp4"  # one face in every frame
    detectors.main(["mtcnn", "haar:min_neighbors=50", "--videos", str(clip), "--per-video", "3",
                    "--photos", "", "--rounds", "1", "--max-side", "256"])
    out = capsys.readouterr().out
    assert "3 frames (256x256)" in out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in out.splitlines() if line.startswith("| mtcnn") or line.startswith("| haar")}
    assert rows["mtcnn"][2] == "3" and rows["mtcnn"][3] == "100%" and rows["mtcnn"][4] == "1.00"
    assert int(rows["haar:min_neighbors=50"][2]) <= 3  # options reach the plugin


def test_detector_benchmark_rejects_a_missing_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        detectors.main(["haar", "--videos", str(tmp_path / "none.mp4")])
    assert "video not found" in capsys.readouterr().err
