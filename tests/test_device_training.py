"""Training on the training device: batches made and augmented there, packed face sets,
the prepared GPU script (run here on the CPU with a few faces)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from vidaffect_trainers.fer2013.data import FER_LABELS, load
from vidaffect_trainers.fer2013.device_batches import DeviceBatches, resolve_device
from vidaffect_trainers.fer2013.pack import read_packed, write_packed

REPO = Path(__file__).resolve().parent.parent


def faces(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(30, 220, 48, dtype=np.float32), (48, 1))
    images = np.stack([np.clip(base + rng.normal(0, 20, (48, 48)), 0, 255) for _ in range(n)]).astype(
        np.uint8
    )
    return images, (np.arange(n) % 7).astype(np.int64)


def test_device_batches_cover_each_face_once_per_epoch_and_repeat_with_the_seed() -> None:
    images, labels = faces(40)
    soft = np.eye(7, dtype=np.float32)[labels]
    db = DeviceBatches(images, labels, 0.5, 0.25, 16, torch.device("cpu"), soft=soft, robust=1.0, seed=3)
    assert len(db) == 2  # drop_last: 40 faces, batches of 16
    batches = list(db)
    x, y, s = batches[0]
    assert x.shape == (16, 1, 48, 48) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(s.argmax(1), y)  # soft targets travel with their faces
    seen = torch.cat([b[1] for b in batches])
    assert len(seen) == 32 and len(set(torch.cat([b[0].flatten(1).mean(1) for b in batches]).tolist())) == 32
    again = DeviceBatches(images, labels, 0.5, 0.25, 16, torch.device("cpu"), soft=soft, robust=1.0, seed=3)
    assert torch.equal(next(iter(again))[0], x)


def test_device_consistency_views_share_one_draw_and_differ_by_their_corruptions() -> None:
    images, labels = faces(8)
    db = DeviceBatches(images, labels, 0.5, 0.25, 8, torch.device("cpu"), robust_ranges="wide", views=3)
    x, y = next(iter(db))
    assert x.shape == (8, 3, 1, 48, 48) and x.dtype == torch.float32 and len(y) == 8
    assert sum(not torch.equal(x[i, k], x[i, 0]) for i in range(8) for k in (1, 2)) >= 14
    db.corrupt = lambda x, p=None: x  # type: ignore[method-assign]
    db.erase = lambda x: x  # type: ignore[method-assign]
    same = next(iter(db))[0]  # without corruptions and erasing the three copies are equal
    assert torch.equal(same[:, 0], same[:, 1]) and torch.equal(same[:, 0], same[:, 2])
    assert not torch.equal(same[0, 0], same[1, 0])  # while the draws differ between faces
    with pytest.raises(ValueError, match="views must be 1 or 3"):
        DeviceBatches(images, labels, 0.5, 0.25, 8, torch.device("cpu"), views=2)


@pytest.mark.parametrize(
    "family",
    ["dark", "low_contrast", "blur", "small", "jpeg", "noise", "rotate", "turn", "jitter", "occlude"],
)
def test_each_device_corruption_changes_the_faces_and_stays_in_range(family: str) -> None:
    from vidaffect_trainers.fer2013.corrupt import TRAIN_RANGES

    images, labels = faces(8)
    db = DeviceBatches(images, labels, 0.5, 0.25, 8, torch.device("cpu"))
    x = torch.from_numpy(images).unsqueeze(1).float() / 255
    y = getattr(db, f"_{family}")(x, torch.full((8,), TRAIN_RANGES[family][1])).clamp(0, 1)
    assert y.shape == x.shape and float((y - x).abs().mean()) > 0.01


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no GPU"):
            resolve_device("cuda")


def test_packed_faces_round_trip_exactly(tmp_path: Path) -> None:
    images, labels = faces(30)
    path = write_packed(tmp_path / "x.faces.xz", {"train": (images, labels)}, FER_LABELS, "mine")
    got = load(path, "train")
    assert np.array_equal(got.images, images) and np.array_equal(got.labels, labels)
    assert got.label_names == FER_LABELS and got.source == "mine/train"
    with pytest.raises(FileNotFoundError, match=r"holds the splits \['train'\], not 'test'"):
        read_packed(path, "test")


@pytest.mark.slow
def test_gpu_script_runs_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    """The prepared GPU script, with the CPU as its device and 210 faces: it trains the VGG
    recipe with device batches, calibrates, and writes the fp16 checkpoint and history."""
    from vidaffect.models.meta import read_meta

    images, labels = faces(210)
    data = write_packed(tmp_path / "fer.faces.xz", {"train": (images, labels)}, FER_LABELS, "synthetic")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": str(Path(os.sys.executable)), "DEVICE": "cpu", "BATCH": "32"}
    proc = subprocess.run(
        ["bash", "scripts/gpu_accurate.sh", str(data), str(out), "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = read_meta(out / "fer2013-vgg.safetensors")
    assert meta.arch == "vgg" and meta.temperature != 1.0 and meta.training["robust"] == 0.3
    assert len(json.loads((out / "history.json").read_text())) == 1
    assert "calibration: temperature" in (out / "train.log").read_text()
