"""Camera corruptions for the robustness benchmark and robustness training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, NEEDS_DATA

from vidaffect_trainers.fer2013.augment import FaceTensorDataset
from vidaffect_trainers.fer2013.consistency import consistency_loss, flatten_views
from vidaffect_trainers.fer2013.corrupt import (
    FAMILIES,
    SEVERITIES,
    TRAIN_RANGES,
    WIDE_RANGES,
    corrupt,
    random_corruption,
)
from vidaffect_trainers.fer2013.data import load


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    if not (DATA / "fer2013" / "test").is_dir():
        pytest.skip(f"needs FER-2013 at {DATA / 'fer2013'}")
    return load(DATA / "fer2013", "test").images[::120][:30]


@NEEDS_DATA
@pytest.mark.parametrize("family", FAMILIES)
def test_each_severity_changes_the_faces_more_and_repeats_exactly(faces: np.ndarray, family: str) -> None:
    change = []
    for s in (1, 2, 3):
        out = corrupt(faces, family, s, seed=3)
        assert out.dtype == np.uint8 and out.shape == faces.shape
        assert np.array_equal(out, corrupt(faces, family, s, seed=3))  # seeded per image
        change.append(float(np.abs(out.astype(np.int16) - faces).mean()))
    assert 0 < change[0] < change[1] < change[2], change


def test_training_draws_stop_short_of_the_strongest_benchmark_level() -> None:
    for family in FAMILIES:
        lo, hi = TRAIN_RANGES[family]
        assert not lo <= SEVERITIES[family][2] <= hi, family


def test_wide_ranges_run_past_every_benchmark_level() -> None:
    for family in FAMILIES:
        lo, hi = WIDE_RANGES[family]
        assert all(lo < level < hi for level in SEVERITIES[family] if level > 0), family
    img = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))
    rng = np.random.default_rng(1)
    assert sum(not np.array_equal(random_corruption(img, rng, 1.0, "wide"), img) for _ in range(50)) > 40


def test_random_corruption_applies_with_its_probability() -> None:
    img = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))
    rng = np.random.default_rng(0)
    assert all(random_corruption(img, rng, p=0.0) is img for _ in range(20))
    changed = sum(not np.array_equal(random_corruption(img, rng, p=0.5), img) for _ in range(400))
    assert 150 < changed < 250


def test_robust_dataset_corrupts_training_faces_only() -> None:
    images = np.tile(np.arange(48, dtype=np.uint8) * 5, (16, 48, 1))
    labels = np.zeros(16, np.int64)
    torch.manual_seed(0)
    train = FaceTensorDataset(images, labels, 0.5, 0.25, augment=True, robust=1.0)
    val = FaceTensorDataset(images, labels, 0.5, 0.25, augment=False, robust=1.0)
    assert train.robust == 1.0 and val.robust == 0.0
    clean = (torch.from_numpy(images[0]).float() / 255 - 0.5) / 0.25
    assert torch.equal(val[0][0][0], clean)


def test_consistency_views_share_geometry_and_differ_by_their_corruptions() -> None:
    images = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    torch.manual_seed(0)
    ds = FaceTensorDataset(
        images, np.zeros(8, np.int64), 0.5, 0.25, augment=True, robust_ranges="wide", views=3
    )
    ds.erase = None  # random erasing is drawn per view; here only the shared draws are compared
    x, label = ds[0]
    assert x.shape == (3, 1, 48, 48) and x.dtype == torch.float32 and label == 0
    views = [ds[i][0] for i in range(8)]
    assert sum(not torch.equal(v[k], v[0]) for v in views for k in (1, 2)) >= 14  # nearly always corrupted
    # a corruption keeps the face where it is: without corruptions the three copies are equal
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("vidaffect_trainers.fer2013.augment.random_corruption", lambda img, *a: img)
        same = ds[1][0]
    assert torch.equal(same[0], same[1]) and torch.equal(same[0], same[2])
    assert FaceTensorDataset(images, np.zeros(4, np.int64), 0.5, 0.25, augment=False, views=3)[0][
        0
    ].shape == (
        1,
        48,
        48,
    )
    with pytest.raises(ValueError, match="views must be 1 or 3"):
        FaceTensorDataset(images, np.zeros(4, np.int64), 0.5, 0.25, augment=True, views=2)


def test_consistency_loss_is_zero_when_views_agree_and_grows_with_disagreement() -> None:
    a = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    assert consistency_loss(torch.stack([a, a, a])).item() == pytest.approx(0.0, abs=1e-6)
    near = consistency_loss(torch.stack([a, a + torch.tensor([0.3, 0.0, 0.0]), a]))
    far = consistency_loss(torch.stack([a, a.flip(1), a]))
    assert 0 < near.item() < far.item() <= np.log(3)  # JS of V views is at most log V
    with pytest.raises(ValueError, match="V >= 2"):
        consistency_loss(a[None])
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 1, 2, 2)  # (B, V, C, H, W)
    flat = flatten_views(x)
    assert flat.shape == (6, 1, 2, 2) and torch.equal(flat[1], x[1, 0]) and torch.equal(flat[2], x[0, 1])


@pytest.mark.slow
@NEEDS_DATA
def test_benchmark_ranks_corruptions_below_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import robustness

    out = tmp_path / "r.json"
    args = ["--checkpoint", "default", "--limit", "140", "--pipeline", "70", "--json", str(out)]
    (result,) = robustness.main(args)
    assert len(result["top1"]) == 1 + 3 * len(FAMILIES)
    assert result["mca"] < result["top1"]["clean"]
    for family in ("blur", "noise"):  # the strongest level hurts more than the mildest
        assert result["top1"][f"{family}-3"] < result["top1"][f"{family}-1"]
    assert json.loads(out.read_text())[0]["name"] == result["name"]
    text = capsys.readouterr().out
    assert "mCA (mean of the 30)" in text and "per-class recall (%)" in text
    p = result["pipeline"]  # the same faces through MTCNN and the plugin's crop
    assert 63 <= p["faces"] <= 77 and 0.6 * p["faces"] <= p["detected"] <= p["faces"]
    assert [m["margin"] for m in p["by_margin"]] == [0.0, 0.1]  # the plugin's margin (none), then 0.1
    assert 0.3 < p["direct"] <= 1 and all(0.3 < m["pipeline"] <= 1 for m in p["by_margin"])
    for margin in ("0", "0.1"):
        assert (
            f"pipeline crop, margin {margin} " in text and f"pipeline loss (points), margin {margin} " in text
        )
    assert all(len(m["recall_pipeline"]) == 7 for m in p["by_margin"])


def test_temperature_scaling_fixes_overconfident_logits() -> None:
    from vidaffect_trainers.calibration import expected_calibration_error, fit_temperature, softmax

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 4000)
    logits = rng.normal(0, 1, (4000, 7))
    logits[np.arange(4000), labels] += 1.5
    true_t = fit_temperature(logits, labels)
    over = logits * 4  # the same ranking, four times too sure
    t = fit_temperature(over, labels)
    assert t == pytest.approx(4 * true_t, rel=0.02)
    before, after = (
        expected_calibration_error(softmax(over), labels),
        expected_calibration_error(softmax(over, t), labels),
    )
    assert after < 0.3 * before
    assert np.array_equal(softmax(over, t).argmax(1), over.argmax(1))  # top-1 unchanged


def test_calibrate_command_writes_the_temperature_and_keeps_fp16(tmp_path: Path) -> None:
    """On a tiny class folder: the command refits a shipped fp16 model's temperature and
    writes a copy that stays fp16, with the ECE before and after."""
    import cv2
    from safetensors import safe_open

    from vidaffect.models.meta import read_meta
    from vidaffect.models.zoo import resolve_checkpoint
    from vidaffect_trainers.commands import run

    rng = np.random.default_rng(0)
    for name in ("angry", "happy", "neutral"):
        (tmp_path / "faces" / name).mkdir(parents=True)
        for i in range(12):
            cv2.imwrite(str(tmp_path / "faces" / name / f"{i}.png"), rng.integers(0, 256, (48, 48), np.uint8))
    out = tmp_path / "calibrated.safetensors"
    shipped = resolve_checkpoint("default").read_bytes()
    assert (
        run(
            "fer2013",
            "calibrate",
            [
                "--checkpoint",
                "default",
                "--data",
                str(tmp_path / "faces"),
                "--val-frac",
                "0.5",
                "--out",
                str(out),
                "--threads",
                "1",
            ],
            prog="vidaffect calibrate",
        )
        == 0
    )
    meta = read_meta(out)
    assert meta.temperature != 1.0 and {"val_ece", "val_ece_uncalibrated"} <= set(meta.metrics)
    with safe_open(str(out), framework="pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys() if "num_batches" not in k)
    assert resolve_checkpoint("default").read_bytes() == shipped  # the shipped file is untouched


def test_pipeline_crop_framing_maps_boxes_onto_the_faces_squares() -> None:
    from benchmarks.pipeline_crop import fit_framing, shifted
    from vidaffect_trainers.fer2013.framing import frame_of

    frame, truth = frame_of(np.full((48, 48), 128, np.uint8), 3)
    assert frame.shape == (432, 432, 3) and truth == [144.0, 144.0, 288.0, 288.0]
    # boxes 20% larger than the square and 5% of their side higher: margin -0.083, offset +0.05
    boxes = [{"bbox": [129.6 + d, 120.96 + d, 302.4 + d, 293.76 + d]} for d in (-1.0, 0.0, 1.0)]
    margin, offset = fit_framing([truth] * 3, boxes + [None])
    assert margin == pytest.approx((144 / 172.8 - 1) / 2, abs=1e-3) and offset == pytest.approx(
        0.05, abs=0.01
    )
    assert shifted([0.0, 0.0, 10.0, 20.0], 0.1) == [0.0, 2.0, 10.0, 22.0]


def test_landmark_framing_fits_and_levels_the_eyes() -> None:
    import cv2

    from benchmarks.pipeline_crop import fit_landmark_framing, landmark_crop, landmark_geometry

    # eyes at y 100, mouth at y 140 (eye-to-mouth 40 px), centre (100, 120)
    face = {"landmarks": [[80.0, 100.0], [120.0, 100.0], [100.0, 120.0], [85.0, 140.0], [115.0, 140.0]]}
    centre, d, angle = landmark_geometry(face["landmarks"])
    assert centre.tolist() == [100.0, 120.0] and d == 40.0 and angle == 0.0
    truth = [60.0, 84.0, 140.0, 164.0]  # an 80 px square centred 4 px below the landmark centre
    assert fit_landmark_framing([truth, truth], [face, None]) == (2.0, 0.1)
    frame = np.zeros((240, 240, 3), np.uint8)
    cv2.line(frame, (80, 100), (120, 100), (255, 255, 255), 1)  # the eye line
    tilted = cv2.warpAffine(frame, cv2.getRotationMatrix2D((100, 120), -20, 1.0), (240, 240))
    m = cv2.getRotationMatrix2D((100, 120), -20, 1.0)
    turned = {"landmarks": [(m @ np.array([x, y, 1.0])).tolist() for x, y in face["landmarks"]]}
    crop = landmark_crop(tilted, turned, 2.0, 0.0, rotate=True)
    rows = np.flatnonzero(crop[..., 0].max(1) > 100)
    assert crop.shape == (80, 80, 3) and rows.max() - rows.min() <= 3  # the eye line is level again


@NEEDS_DATA
def test_pipeline_crop_benchmark_runs_the_real_detector(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import pipeline_crop

    result = pipeline_crop.main(["--limit", "21"])
    assert 0 < result["detected"] <= result["n"] == 21
    assert "margin=-0.025,offset_y=0.0" not in result  # the sweep is fixed, the fitted one needs --fit
    assert "direct 48x48 (training framing)" in capsys.readouterr().out
