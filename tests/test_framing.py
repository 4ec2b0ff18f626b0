"""The pipeline's framing of training faces: MTCNN's boxes on FER-2013 faces, the plugin's crop
around them, and ``vidaffect train --framing``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import DATA, NEEDS_DATA

import vidaffect_trainers.fer2013.device_batches as device_batches
from vidaffect.models.checkpoint import read_meta
from vidaffect_trainers.fer2013 import framing
from vidaffect_trainers.fer2013.data import load

FACE = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    if not (DATA / "fer2013" / "test").is_dir():
        pytest.skip(f"needs FER-2013 at {DATA / 'fer2013'}")
    return load(DATA / "fer2013", "test").images[::150][:24]


def test_the_crop_of_the_face_square_is_the_face_and_a_margin_zooms_out() -> None:
    assert np.array_equal(framing.crop_box(FACE, np.array([0, 0, 1, 1.0]), 0.0), FACE)
    img = np.zeros((48, 48), np.uint8)
    img[12:36, 12:36] = 255  # a bright square half the face's side
    wide = framing.crop_box(img, np.array([0, 0, 1, 1.0]), 0.5)  # twice the side: half as large
    assert abs(int((wide > 127).sum()) - 12 * 12) <= 12
    down = framing.crop_box(img, np.array([0, 0, 1, 1.0]), 0.0, offset_y=0.25)  # centre moved down
    rows = np.nonzero((down > 127).any(1))[0]
    assert rows.min() < 6 and rows.max() < 30


def test_random_framing_keeps_faces_without_a_box_or_unchosen() -> None:
    rng = np.random.default_rng(0)
    box = np.array([0.1, 0.0, 0.9, 1.0], np.float32)
    assert framing.random_framing(FACE, box, rng, 0.0) is FACE
    assert framing.random_framing(FACE, np.full(4, np.nan, np.float32), rng, 1.0) is FACE
    changed = sum(not np.array_equal(framing.random_framing(FACE, box, rng, 0.5), FACE) for _ in range(200))
    assert 60 < changed < 140


def test_device_batches_frame_as_the_cpu_crop_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_batches, "MARGIN_RANGE", (0.1, 0.1))
    monkeypatch.setattr(device_batches, "OFFSET_RANGE", (0.05, 0.05))
    img = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (2, 48, 48), np.uint8), (0, 0), 2)
    boxes = np.array([[0.1, -0.02, 0.9, 1.02], [np.nan] * 4], np.float32)
    batches = device_batches.DeviceBatches(
        img, np.zeros(2, np.int64), 0.5, 0.25, 2, torch.device("cpu"), boxes=boxes, framing=1.0
    )
    x = batches.frame(torch.from_numpy(img).unsqueeze(1).float() / 255, torch.from_numpy(boxes))
    cpu = framing.crop_box(img[0], boxes[0], 0.1, 0.05).astype(np.float32)
    assert np.abs(cpu - x[0, 0].numpy() * 255).mean() < 3  # same crop, other interpolation
    assert np.abs(cpu - img[0]).mean() > 3 * np.abs(cpu - x[0, 0].numpy() * 255).mean()
    assert torch.equal(x[1], torch.from_numpy(img[1]).unsqueeze(0).float() / 255)  # no box: kept


@NEEDS_DATA
def test_mtcnn_boxes_sit_on_the_faces_and_are_kept_per_machine(
    faces: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boxes = framing.cached_boxes(faces, cache=tmp_path)
    assert boxes.shape == (len(faces), 4) and boxes.dtype == np.float32
    found = np.isfinite(boxes).all(1)
    assert found.mean() >= 0.6
    assert np.isnan(boxes[~found]).all()
    ious = [framing.iou(b.tolist(), [0, 0, 1, 1]) for b in boxes[found]]
    assert np.median(ious) > 0.6  # MTCNN's box lies on the face, not beside it
    (cached,) = tmp_path.glob("*.npz")

    def no_detection(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the boxes should have come from the cache")

    monkeypatch.setattr(framing, "detect_boxes", no_detection)
    assert np.array_equal(framing.cached_boxes(faces, cache=tmp_path), boxes, equal_nan=True)
    with pytest.raises(AssertionError, match="from the cache"):  # other faces: detected again
        framing.cached_boxes(faces[:5], cache=tmp_path)
    assert cached.is_file()


@pytest.mark.slow
@NEEDS_DATA
def test_framing_training_is_recorded_in_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vidaffect_trainers.fer2013.__main__ import main as cli

    test = load(DATA / "fer2013", "test")
    for k, name in enumerate(test.label_names):  # a small Kaggle-layout folder of real faces
        for j, i in enumerate(np.nonzero(test.labels == k)[0][:6]):
            for split in ("train", "test"):
                (tmp_path / "fer" / split / name).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(tmp_path / "fer" / split / name / f"{j}.png"), test.images[i])
    monkeypatch.setenv("VIDAFFECT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "fer"), "--out", str(out), "--arch", "lenet5"]
    args += ["--epochs", "1", "--batch-size", "8", "--threads", "1", "--quiet", "--framing", "0.5"]
    assert cli(args) == 0
    assert read_meta(out / "best.safetensors").training["framing"] == 0.5
    assert list((tmp_path / "cache" / "framing").glob("*.npz"))
    assert "MTCNN boxes for 42 faces" in capsys.readouterr().out
