"""Camera corruptions for the robustness benchmark and robustness training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, NEEDS_DATA

from vidaffect_trainers.fer2013.augment import FaceTensorDataset
from vidaffect_trainers.fer2013.corrupt import FAMILIES, SEVERITIES, TRAIN_RANGES, corrupt, random_corruption
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


@NEEDS_DATA
def test_benchmark_ranks_corruptions_below_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import robustness

    out = tmp_path / "r.json"
    (result,) = robustness.main(["--checkpoint", "default", "--limit", "140", "--json", str(out)])
    assert len(result["top1"]) == 1 + 3 * len(FAMILIES)
    assert result["mca"] < result["top1"]["clean"]
    for family in ("blur", "noise"):  # the strongest level hurts more than the mildest
        assert result["top1"][f"{family}-3"] < result["top1"][f"{family}-1"]
    assert json.loads(out.read_text())[0]["name"] == result["name"]
    text = capsys.readouterr().out
    assert "mCA (mean of the 30)" in text and "per-class recall (%)" in text
