"""Tests of the FER-2013 trainer: loaders, split, training/resume, checkpoints, evaluate, compare.

Everything runs on tiny synthetic data written into ``tmp_path``; ``VIDAFFECT_CACHE`` points
into ``tmp_path`` so the loaders' npz cache never touches ``~/.cache``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidaffect.errors import CheckpointError
from vidaffect.models import create_model, list_models, model_inputs
from vidaffect.models.checkpoint import (
    CheckpointMeta,
    build_model,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from vidaffect_trainers import metrics
from vidaffect_trainers.common import cpu_memory_format, make_ema
from vidaffect_trainers.fer2013 import distill, evaluate, predict
from vidaffect_trainers.fer2013 import train as train_mod
from vidaffect_trainers.fer2013.__main__ import main as cli
from vidaffect_trainers.fer2013.data import FER_LABELS, load, load_csv, load_folder, stratified_split

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("VIDAFFECT_CACHE", str(cache))
    return cache


def class_level(k: int) -> int:
    """Mean grey level of the synthetic faces of class index ``k`` (recoverable from pixels)."""
    return 20 + 30 * k


def write_folder(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: 48x48 noise around :func:`class_level` of the FER index."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        k = FER_LABELS.index(name.lower()) if name.lower() in FER_LABELS else 0
        for i in range(n):
            img = np.clip(rng.normal(class_level(k), 4, (48, 48)), 0, 255).astype(np.uint8)
            assert cv2.imwrite(str(d / f"{i}.png"), img)
    return root


def write_csv(path: Path, rows: list[tuple[int, str]], seed: int = 0) -> Path:
    """fer2013.csv with ``(emotion, Usage)`` rows and random 48x48 pixels."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for emotion, usage in rows:
            w.writerow([emotion, " ".join(map(str, rng.integers(0, 256, 48 * 48))), usage])
    return path


# --- data ----------------------------------------------------------------------------------

CSV_ROWS = [(i % 7, "Training") for i in range(14)]
CSV_ROWS += [(3, "PublicTest"), (5, "PublicTest"), (6, "PrivateTest")]


def test_load_csv_usage_filter_and_label_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "fer2013.csv", CSV_ROWS)
    train = load_csv(path, "Training")
    assert train.images.shape == (14, 48, 48) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64
    assert train.labels.tolist() == [i % 7 for i in range(14)]
    assert train.label_names == FER_LABELS
    assert load(path, "test").labels.tolist() == [3, 5]
    assert load(path, "private").labels.tolist() == [6]
    assert len(load_csv(path)) == len(CSV_ROWS)
    with path.open() as f:  # pixels are kept in row-major order
        first = next(csv.DictReader(f))
    assert train.images[0].ravel().tolist() == [int(v) for v in first["pixels"].split()]


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("emotion,Usage\n0,Training\n", ValueError, "missing column"),
        ("emotion,pixels,Usage\n0,1 2 3,Training\n", ValueError, "not a square"),
        ("emotion,pixels,Usage\n7,1 2 3 4,Training\n", ValueError, "emotion labels"),
        ("emotion,pixels,Usage\n0,1 2 3 4,PublicTest\n", ValueError, "no rows"),
    ],
)
def test_load_csv_errors(tmp_path: Path, text: str, error: type[Exception], match: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(error, match=match):
        load_csv(tmp_path / "bad.csv", "Training")


def test_train_cli_reports_a_bad_csv_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.csv").write_text("emotion,Usage\n0,Training\n")
    assert train(tmp_path / "bad.csv", tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing column" in err and "Traceback" not in err


def test_load_folder_uses_fer_order_whatever_the_folder_names(tmp_path: Path, _cache: Path) -> None:
    # created in reverse order, one capitalised: the class order must still be FER's
    counts = {name: 2 for name in reversed(FER_LABELS)}
    counts["Happy"] = counts.pop("happy")
    write_folder(tmp_path / "data" / "train", counts)
    faces = load(tmp_path / "data", "train")
    assert faces.label_names == FER_LABELS
    assert faces.class_counts().tolist() == [2] * 7
    for k in range(7):  # each image carries its class in its grey level
        assert abs(faces.images[faces.labels == k].mean() - class_level(k)) < 2
    assert list(_cache.glob("data/folder-*.npz")), "cache not written under VIDAFFECT_CACHE"
    again = load_folder(tmp_path / "data" / "train")  # from the cache
    np.testing.assert_array_equal(again.images, faces.images)
    np.testing.assert_array_equal(again.labels, faces.labels)


def test_load_folder_cache_sees_a_file_moved_between_classes(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "faces", {"happy": 2, "sad": 2})
    assert load_folder(root).class_counts()[[3, 4]].tolist() == [2, 2]
    os.rename(root / "happy" / "0.png", root / "sad" / "9.png")  # same count, same mtimes
    assert load_folder(root).class_counts()[[3, 4]].tolist() == [1, 3]


def test_load_layout_without_the_split_raises(tmp_path: Path) -> None:
    write_folder(tmp_path / "data" / "train", {"happy": 1})
    with pytest.raises(FileNotFoundError, match="no test/"):
        load(tmp_path / "data", "test")


def test_stratified_split_keeps_proportions_and_is_seeded() -> None:
    labels = np.repeat(np.arange(3), [100, 50, 20])
    keep, hold = stratified_split(labels, 0.2, seed=1)
    assert np.bincount(labels[hold]).tolist() == [20, 10, 4]
    assert np.bincount(labels[keep]).tolist() == [80, 40, 16]
    assert np.intersect1d(keep, hold).size == 0 and len(keep) + len(hold) == len(labels)
    again = stratified_split(labels, 0.2, seed=1)
    np.testing.assert_array_equal(again[1], hold)
    assert not np.array_equal(stratified_split(labels, 0.2, seed=2)[1], hold)
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(labels, -0.1, seed=0)


# --- metrics -------------------------------------------------------------------------------


def test_metrics_match_hand_computed_values() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 0])
    cm = metrics.confusion_matrix(y_true, y_pred, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [2, 0, 1, 0], [0, 0, 0, 0]]
    p, r, f1, support = metrics.precision_recall_f1(cm)
    np.testing.assert_allclose(p, [1 / 3, 2 / 3, 1, 0])
    np.testing.assert_allclose(r, [1 / 2, 1, 1 / 3, 0])
    np.testing.assert_allclose(f1, [0.4, 0.8, 0.5, 0])
    assert support.tolist() == [2, 2, 3, 0]
    assert metrics.accuracy(cm) == pytest.approx(4 / 7)
    assert metrics.macro_f1(cm) == pytest.approx((0.4 + 0.8 + 0.5) / 3)  # class 3 absent
    report = metrics.classification_report(cm, ["a", "b", "c", "d"])
    assert "macro avg" in report and "0.5667" in report and "0.5714" in report
    with pytest.raises(ValueError, match="outside"):
        metrics.confusion_matrix(np.array([0, 4]), np.array([0, 0]), 4)


# --- models and checkpoints ----------------------------------------------------------------


# options an architecture cannot do without
NEEDED_OPTIONS = {
    "ensemble": {"members": [{"arch": "lenet5"}, {"arch": "resnet18", "arch_kwargs": {"width": 8}}]}
}


@pytest.mark.parametrize("arch", list_models())
def test_registered_model_forward(arch: str) -> None:
    torch.manual_seed(0)
    if model_inputs(arch) == ("image",):
        model = create_model(arch, num_classes=7, in_channels=1, **NEEDED_OPTIONS.get(arch, {})).eval()
        with torch.inference_mode():
            out = model(torch.randn(2, 1, 48, 48))
        assert out.shape == (2, 7)
        assert torch.isfinite(out).all()
        return
    assert model_inputs(arch) == ("body", "context")
    for backbone in ("alexnet", "resnet18"):
        model = create_model(arch, num_classes=26, in_channels=3, backbone=backbone).eval()
        with torch.inference_mode():
            logits, vad = model(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 96, 128))
        assert logits.shape == (2, 26) and vad.shape == (2, 3)
        assert torch.isfinite(logits).all() and torch.isfinite(vad).all()
        assert ((vad >= 1) & (vad <= 10)).all()  # EMOTIC's 1-10 scale


def test_resnet_deep_stem_sees_full_resolution() -> None:
    plain = create_model("resnet18", num_classes=7, width=16)
    deep = create_model("resnet18", num_classes=7, width=16, deep_stem=True).eval()
    convs = [m for m in deep.stem if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.stride) for c in convs] == [(8, (1, 1)), (16, (2, 2))]
    assert sum(isinstance(m, torch.nn.Conv2d) for m in plain.stem) == 1
    with torch.inference_mode():
        assert deep.stem(torch.randn(1, 1, 48, 48)).shape == (1, 16, 24, 24)
        assert deep(torch.randn(2, 1, 48, 48)).shape == (2, 7)


def test_checkpoint_round_trip_fp16(tmp_path: Path) -> None:
    meta = CheckpointMeta(
        arch="lenet5",
        labels=list(FER_LABELS),
        input_size=(48, 48),
        in_channels=1,
        mean=[0.5],
        std=[0.25],
        training={"data": "synthetic"},
        metrics={"val_top1": 0.5},
    )
    torch.manual_seed(0)
    model = build_model(meta).eval()
    with torch.no_grad():  # larger weights than the init, so the logits are not all ~0
        for p in model.parameters():
            p.normal_(0, 0.2)
    x = torch.randn(8, 1, 48, 48)
    path = save_checkpoint(tmp_path / "m.safetensors", model, meta, dtype=torch.float16)
    assert all(t.dtype == torch.float16 for t in load_file(str(path)).values())
    loaded, meta2 = load_checkpoint(path)
    assert meta2 == meta and read_meta(path) == meta
    assert not loaded.training
    with torch.inference_mode():
        a, b = model(x), loaded(x)
    assert b.dtype == torch.float32
    torch.testing.assert_close(b, a, rtol=1e-2, atol=1e-2 * float(a.abs().max()))
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.75


def test_load_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.safetensors")
    meta = CheckpointMeta("resnet18", list("abc"), (48, 48), 1, [0.5], [0.25], arch_kwargs={"width": 16})
    path = save_checkpoint(tmp_path / "r.safetensors", create_model("resnet18", 3, width=16), meta)
    for bad, message in (
        ({"arch_kwargs": {"colour": 1}}, "cannot build architecture 'resnet18'"),
        ({"in_channels": 3}, "weights don't match"),
    ):
        save_checkpoint(path, create_model("resnet18", 3, width=16), dataclasses.replace(meta, **bad))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


# --- training ------------------------------------------------------------------------------

TRAIN_ARGS = [
    "--arch",
    "lenet5",
    "--batch-size",
    "8",
    "--threads",
    "1",
    "--quiet",
    "--val-frac",
    "0.25",
    "--optimizer",
    "adam",
    "--lr",
    "0.01",
]


def train(data: Path, out: Path, *extra: str) -> int:
    return cli(["train", "--data", str(data), "--out", str(out), *TRAIN_ARGS, *extra])


@pytest.fixture(scope="module")
def fer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Kaggle-layout FER folder: train/ 6 per class, test/ 1..7 per class (distinct counts)."""
    root = tmp_path_factory.mktemp("fer")
    write_folder(root / "train", {n: 6 for n in FER_LABELS})
    write_folder(root / "test", {n: k + 1 for k, n in enumerate(FER_LABELS)}, seed=1)
    return root


@pytest.fixture(scope="module")
def run_dir(fer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-epoch lenet5 run on :func:`fer_dir`."""
    out = tmp_path_factory.mktemp("run") / "lenet"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDAFFECT_CACHE", str(out.parent / "cache"))
        assert train(fer_dir, out, "--epochs", "2") == 0
    return out


@pytest.mark.slow
def test_robust_training_is_recorded_in_the_checkpoint(
    fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "robust"
    assert train(fer_dir, out, "--epochs", "1", "--max-steps", "2", "--robust", "0.5") == 0
    assert read_meta(out / "best.safetensors").training["robust"] == 0.5
    with pytest.raises(SystemExit):
        train(fer_dir, tmp_path / "bad", "--robust", "1.5")
    assert "expected a value in [0, 1]" in capsys.readouterr().err


@pytest.mark.slow
def test_consistency_training_is_recorded_with_either_data_pipeline(fer_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "consistency"
    assert train(fer_dir, out, "--epochs", "1", "--consistency", "12", "--device-batches", "off") == 0
    assert read_meta(out / "best.safetensors").training["consistency"] == 12
    history = json.loads((out / "history.json").read_text())
    assert 0 <= history[-1]["train_top1"] <= 1 and np.isfinite(history[-1]["train_loss"])
    on_device = tmp_path / "device-batches"
    assert train(fer_dir, on_device, "--epochs", "1", "--consistency", "12", "--device-batches", "on") == 0
    assert np.isfinite(json.loads((on_device / "history.json").read_text())[-1]["train_loss"])


@pytest.mark.slow
def test_two_step_training_writes_checkpoints(fer_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(fer_dir, out, "--epochs", "5", "--max-steps", "2") == 0
    assert (out / "last.pt").is_file() and (out / "best.safetensors").is_file()
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1  # 28 train images / batch 8 = 3 steps: stopped inside epoch 1
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    model, meta = load_checkpoint(out / "best.safetensors")
    assert meta.arch == "lenet5" and meta.labels == list(FER_LABELS)
    assert meta.input_size == (48, 48) and 0 < meta.mean[0] < 1 and meta.std[0] > 0
    assert meta.metrics["epoch"] == 1


@pytest.mark.slow
def test_training_set_smaller_than_a_batch_still_trains(fer_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(fer_dir, out, "--epochs", "1", "--batch-size", "64") == 0
    assert json.loads((out / "history.json").read_text())[0]["train_loss"] > 0


@pytest.mark.slow
def test_limit_above_the_data_size_uses_all_of_it(fer_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train(fer_dir, out, "--epochs", "1", "--max-steps", "1", "--limit", "50") == 0
    assert read_meta(out / "best.safetensors").training["train_size"] == 28  # 42 - 14 val


@pytest.mark.slow
def test_resume_continues_from_last_epoch(
    fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(fer_dir, out, "--epochs", "1") == 0
    first = json.loads((out / "history.json").read_text())
    capsys.readouterr()
    assert train(fer_dir, out, "--epochs", "2") == 0
    assert "at epoch 1" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0] == first[0]
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_resume_into_another_models_run_names_the_file(
    fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(fer_dir, out, "--epochs", "1", "--max-steps", "1") == 0
    capsys.readouterr()
    assert train(fer_dir, out, "--epochs", "2", "--arch", "resnet18", "--arch-opt", "width=8") == 1
    err = capsys.readouterr().err
    assert f"{out / 'last.pt'} does not fit this model" in err and "--restart" in err
    assert len(json.loads((out / "history.json").read_text())) == 1  # the run is left as it was
    assert (
        train(
            fer_dir,
            out,
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--arch",
            "resnet18",
            "--arch-opt",
            "width=8",
            "--restart",
        )
        == 0
    )
    assert read_meta(out / "best.safetensors").arch == "resnet18"


@pytest.mark.parametrize(
    ("arch", "options", "expected"),
    [
        ("resnet18", {"width": 4}, torch.contiguous_format),  # crashes torch 2.14.1 on AVX2-only CPUs
        ("lenet5", {}, torch.contiguous_format),  # conv1 has 6 channels
        ("resnet18", {"width": 8}, torch.channels_last),
        ("resnet18", {"width": 32, "deep_stem": True}, torch.channels_last),  # the shipped default
        ("alexnet", {}, torch.channels_last),
    ],
)
def test_narrow_convolutions_train_contiguous(
    arch: str, options: dict[str, Any], expected: torch.memory_format
) -> None:
    assert cpu_memory_format(create_model(arch, 7, **options)) == expected


@pytest.mark.slow
def test_a_narrow_model_trains_and_validates_contiguous(
    fer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ResNet-18 of width 4 in channels_last corrupts torch 2.14.1's heap in backward on
    AVX2-only CPUs (SIGABRT within three steps): the trainer and its validation must keep it in
    the contiguous format throughout, also after validation has run."""
    models: list[torch.nn.Module] = []
    real_build = train_mod.build_model
    monkeypatch.setattr(train_mod, "build_model", lambda meta: models.append(real_build(meta)) or models[-1])
    channels_last_steps: list[bool] = []
    real_cross_entropy = train_mod.F.cross_entropy

    def recording_cross_entropy(logits: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        channels_last_steps.append(
            any(p.ndim == 4 and not p.is_contiguous() for p in models[-1].parameters())
        )
        return real_cross_entropy(logits, *args, **kwargs)

    monkeypatch.setattr(train_mod.F, "cross_entropy", recording_cross_entropy)
    assert (
        train(
            fer_dir,
            tmp_path / "run",
            "--epochs",
            "2",
            "--max-steps",
            "6",
            "--arch",
            "resnet18",
            "--arch-opt",
            "width=4",
        )
        == 0
    )
    assert len(channels_last_steps) == 6 and not any(channels_last_steps)  # both epochs


def test_ema_warms_up_then_decays_at_the_set_rate() -> None:
    model = torch.nn.BatchNorm1d(2)
    ema = make_ema(model, 0.9)
    assert make_ema(model, 0.0) is None
    ema.update_parameters(model)  # the first update copies
    for t, value in ((1, 1.0), (2, 3.0)):
        before = ema.module.weight.detach().clone()
        model.weight.data.fill_(value)
        model.num_batches_tracked.fill_(7 * t)
        ema.update_parameters(model)
        d = min(0.9, (1 + t) / (10 + t))
        assert torch.allclose(ema.module.weight, d * before + (1 - d) * value)
        assert int(ema.module.num_batches_tracked) == 7 * t
    ema.n_averaged.fill_(1000)  # long after the warm-up: the set decay
    before = ema.module.weight.detach().clone()
    model.weight.data.fill_(5.0)
    ema.update_parameters(model)
    assert torch.allclose(ema.module.weight, 0.9 * before + 0.1 * 5.0)
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        make_ema(model, 1.0)


@pytest.mark.slow
def test_ema_selects_and_resumes_the_averaged_weights(
    fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train(fer_dir, out, "--epochs", "1", "--ema", "0.5") == 0
    state = torch.load(out / "last.pt", weights_only=True)
    best = load_file(out / "best.safetensors")
    assert set(best) == set(state["model"])
    # epoch 1 is always the best so far, so best.safetensors holds the average, not the raw weights
    assert all(torch.equal(best[k], state["ema"][f"module.{k}"].to(best[k].dtype)) for k in best)
    assert any(not torch.equal(best[k], state["model"][k].to(best[k].dtype)) for k in best)
    assert read_meta(out / "best.safetensors").training["ema_decay"] == 0.5

    assert train(fer_dir, out, "--epochs", "2", "--ema", "0.5") == 0
    history = json.loads((out / "history.json").read_text())
    assert all(0 <= h["ema_val_top1"] <= 1 and h["ema_val_loss"] > 0 for h in history)
    # 28 training images in batches of 8 (last partial batch dropped): 3 updates per epoch,
    # so 6 means the average carried over the resume instead of restarting
    assert int(torch.load(out / "last.pt", weights_only=True)["ema"]["n_averaged"]) == 6
    plain = tmp_path / "plain"
    assert train(fer_dir, plain, "--epochs", "1") == 0
    assert train(fer_dir, plain, "--epochs", "2", "--ema", "0.9") == 1
    assert "trained without --ema" in capsys.readouterr().err
    assert len(json.loads((plain / "history.json").read_text())) == 1  # the run is left as it was
    with pytest.raises(SystemExit):
        train(fer_dir, plain, "--ema", "1")
    assert "EMA decay must be in [0, 1)" in capsys.readouterr().err


# --- distillation --------------------------------------------------------------------------


def test_distillation_loss_is_zero_at_the_teacher_and_scales_with_temperature() -> None:
    teacher = torch.softmax(torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]]), dim=1)
    for t in (1.0, 2.0, 4.0):
        assert distill.distillation_loss(torch.log(teacher), teacher, t).item() == pytest.approx(0, abs=1e-6)
    wrong = torch.tensor([[-1.0, 0.5, 2.0], [3.0, 0.0, 0.0]])
    losses = [distill.distillation_loss(wrong, teacher, t).item() for t in (1.0, 4.0)]
    assert losses[0] > 0.5 and losses[1] > 0.5  # T^2 keeps the softened term from vanishing


@pytest.mark.slow
def test_teacher_targets_match_the_teacher_and_are_cached(
    run_dir: Path, fer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = run_dir / "best.safetensors"
    faces = load(fer_dir, "train")
    cache = tmp_path / "teacher_probs.npz"
    probs = distill.teacher_probs([str(ckpt)], faces.images, list(FER_LABELS), cache=cache)
    model, meta = load_checkpoint(ckpt)
    # the teacher's plain softmax (T = 1), whatever temperature it was calibrated to
    expected = predict.probs_from_logits(predict.image_logits(model, meta, faces.images, tta_flip=True))
    assert meta.temperature != 1.0  # training calibrated it
    assert probs.shape == (42, 7) and np.allclose(probs, expected, atol=1e-5)
    # reversed student label order: the teacher's columns follow the names
    rev = distill.teacher_probs([str(ckpt)], faces.images, list(FER_LABELS)[::-1])
    assert np.allclose(rev, expected[:, ::-1], atol=1e-5)
    with pytest.raises(CheckpointError, match=r"has no output for \['contempt'\]"):
        distill.teacher_probs([str(ckpt)], faces.images, [*FER_LABELS, "contempt"])

    def no_prediction(*_: Any, **__: Any) -> np.ndarray:
        raise AssertionError("the cached targets should have been used")

    monkeypatch.setattr(distill, "image_logits", no_prediction)
    assert np.array_equal(
        distill.teacher_probs([str(ckpt)], faces.images, list(FER_LABELS), cache=cache), probs
    )
    with pytest.raises(AssertionError, match="cached targets"):  # other faces: the cache does not apply
        distill.teacher_probs([str(ckpt)], faces.images[:10], list(FER_LABELS), cache=cache)


@pytest.mark.slow
def test_training_with_a_teacher(
    run_dir: Path, fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "student"
    teacher = str(run_dir / "best.safetensors")
    assert train(fer_dir, out, "--epochs", "1", "--teacher", teacher, "--distill-weight", "0.7") == 0
    printed = capsys.readouterr().out
    assert "teacher targets for 28 faces" in printed and "warning" not in printed  # same split
    assert (
        train(
            fer_dir,
            tmp_path / "other",
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--teacher",
            teacher,
            "--seed",
            "1",
        )
        == 0
    )
    assert f"warning: teacher {teacher} was trained on another split" in capsys.readouterr().out
    training = read_meta(out / "best.safetensors").training
    assert training["teachers"] == [
        {
            "checkpoint": teacher,
            "arch": "lenet5",
            "sha256": hashlib.sha256(Path(teacher).read_bytes()).hexdigest(),
            "val_top1": read_meta(teacher).metrics["val_top1"],
        }
    ]
    assert training["distill_weight"] == 0.7
    with np.load(out / "teacher_probs.npz") as z:
        assert z["probs"].shape == (28, 7) and np.allclose(z["probs"].sum(1), 1, atol=1e-5)
    with pytest.raises(SystemExit):
        train(fer_dir, tmp_path / "bad", "--teacher", teacher, "--distill-weight", "1.5")
    assert "expected a value in [0, 1]" in capsys.readouterr().err
    assert train(fer_dir, tmp_path / "bad", "--teacher", str(tmp_path / "none.safetensors")) == 1
    assert "neither a shipped model" in capsys.readouterr().err


def finetune(data: Path, out: Path, *extra: str) -> int:
    return cli(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--batch-size",
            "8",
            "--threads",
            "1",
            "--quiet",
            "--val-frac",
            "0.25",
            *extra,
        ]
    )


@pytest.mark.slow
def test_fine_tuning_starts_from_the_init_model(
    run_dir: Path, fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init = run_dir / "best.safetensors"
    out = tmp_path / "tuned"
    # no --arch: the architecture is the checkpoint's; lr 0 leaves the weights where they started
    assert finetune(fer_dir, out, "--init", str(init), "--lr", "0", "--ema", "0.9", "--epochs", "1") == 0
    printed = capsys.readouterr().out
    assert "warning" not in printed  # the init run used the same split
    start, start_meta = load_checkpoint(init)
    assert f"the --init model: val top-1 {start_meta.metrics['val_top1']:.4f}" in printed
    tuned, tuned_meta = load_checkpoint(out / "best.safetensors")
    start_params = dict(start.named_parameters())
    for name, param in tuned.named_parameters():  # the EMA too started from the init weights
        assert torch.equal(param, start_params[name]), name
    assert tuned_meta.arch == "lenet5"
    assert tuned_meta.training["init"] == {
        "checkpoint": str(init),
        "arch": "lenet5",
        "sha256": hashlib.sha256(init.read_bytes()).hexdigest(),
        "val_top1": start_meta.metrics["val_top1"],
    }
    # with a learning rate the weights move away from the init model's
    assert finetune(fer_dir, tmp_path / "moved", "--init", str(init), "--lr", "0.01", "--max-steps", "1") == 0
    moved, _ = load_checkpoint(tmp_path / "moved" / "best.safetensors")
    assert any(not torch.equal(p, start_params[n]) for n, p in moved.named_parameters())


@pytest.mark.slow
def test_fine_tuning_a_shipped_fp16_model_on_some_of_its_classes(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = tmp_path / "fer2013-lenet5.safetensors"
    assert cli(["export", str(run_dir / "best.safetensors"), str(shipped)]) == 0
    init_meta = read_meta(shipped)
    # brighter faces than the init model's data, and only two of its seven classes
    data = write_folder(tmp_path / "mine", {"Happy": 8, "surprise": 8})
    assert (
        finetune(data, tmp_path / "run", "--init", str(shipped), "--epochs", "1", "--teacher", str(shipped))
        == 0
    )
    assert f"warning: the --init model {shipped} was trained on another split" in capsys.readouterr().out
    meta = read_meta(tmp_path / "run" / "best.safetensors")
    assert meta.labels == init_meta.labels == list(FER_LABELS)
    assert (meta.mean, meta.std) == (init_meta.mean, init_meta.std)
    data_mean = float(load(data).images.mean() / 255)
    assert abs(meta.mean[0] - data_mean) > 0.05  # the data's own statistics were not used
    assert meta.training["train_size"] == 12 and meta.training["teachers"][0]["arch"] == "lenet5"


@pytest.mark.slow
def test_resumed_fine_tuning_keeps_its_start(
    run_dir: Path, fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init = tmp_path / "init.safetensors"
    init.write_bytes((run_dir / "best.safetensors").read_bytes())
    out = tmp_path / "run"
    assert finetune(fer_dir, out, "--init", str(init), "--epochs", "2", "--max-steps", "1") == 0
    first = read_meta(out / "best.safetensors")
    init.unlink()  # resuming needs neither --init nor the file
    assert finetune(fer_dir, out, "--epochs", "2") == 0
    assert "at epoch 1" in capsys.readouterr().out
    resumed = read_meta(out / "best.safetensors")
    assert len(json.loads((out / "history.json").read_text())) == 2
    assert resumed.training["init"] == first.training["init"] and resumed.mean == first.mean
    assert (
        finetune(fer_dir, out, "--epochs", "3", "--arch-opt", "width=4") == 1
    )  # still the init's architecture
    assert "--arch-opt cannot change" in capsys.readouterr().err
    # --init cannot be bolted onto a run that started from random weights
    scratch = tmp_path / "scratch"
    assert train(fer_dir, scratch, "--epochs", "2", "--max-steps", "1") == 0
    capsys.readouterr()
    assert finetune(fer_dir, scratch, "--epochs", "2", "--init", str(run_dir / "best.safetensors")) == 1
    assert "started from random weights" in capsys.readouterr().err
    # --restart without --init forgets the start point
    assert train(fer_dir, out, "--epochs", "1", "--max-steps", "1", "--restart") == 0
    assert not (out / "init.json").exists() and "init" not in read_meta(out / "best.safetensors").training


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--init", "INIT", "--arch", "resnet18"], "does not match the --init model"),
        (["--init", "INIT", "--arch-opt", "width=4"], "--arch-opt cannot change"),
        (["--init", "NONE"], "neither a shipped model"),
        ([], "--arch is required"),
    ],
)
def test_fine_tuning_errors(
    run_dir: Path,
    fer_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    swap = {"INIT": str(run_dir / "best.safetensors"), "NONE": str(tmp_path / "none.safetensors")}
    assert finetune(fer_dir, tmp_path / "run", *[swap.get(a, a) for a in extra]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.slow
def test_fine_tuning_names_the_classes_the_model_lacks(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_folder(tmp_path / "odd", {"happy": 4, "contempt": 4})
    assert finetune(data, tmp_path / "run", "--init", str(run_dir / "best.safetensors")) == 1
    assert "class folder(s) ['contempt'] are not among the classes" in capsys.readouterr().err


# --- export --------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_writes_fp16_with_test_figures_and_no_machine_paths(
    run_dir: Path, fer_dir: Path, tmp_path: Path
) -> None:
    model, meta = load_checkpoint(run_dir / "best.safetensors")
    teacher = str(run_dir / "best.safetensors")
    meta.training["teachers"] = [*distill.describe_checkpoints([teacher]), "/old/runs/t.safetensors"]
    meta.training["init"] = distill.describe_checkpoints([teacher])[0]
    student = save_checkpoint(tmp_path / "student.safetensors", model, meta)
    report = tmp_path / "report"
    cli_json(
        [
            "evaluate",
            "--checkpoint",
            str(student),
            "--data",
            str(fer_dir),
            "--threads",
            "1",
            "--report",
            str(report),
        ]
    )
    figures = json.loads((report / "metrics.json").read_text())
    out = tmp_path / "ship" / "fer2013-lenet5.safetensors"
    assert cli(["export", str(student), str(out), "--metrics", str(report / "metrics.json")]) == 0
    shipped = read_meta(out)
    assert shipped.metrics["test_top1"] == figures["top1"] and shipped.metrics["test_n"] == 28
    assert shipped.metrics["val_top1"] == meta.metrics["val_top1"]
    assert shipped.metrics["test_data"] == f"{fer_dir.name}/test"
    assert shipped.training["data"] == f"{fer_dir.name}/train"
    assert [t["checkpoint"] if isinstance(t, dict) else t for t in shipped.training["teachers"]] == [
        f"{run_dir.name}/best.safetensors",  # a run's best checkpoint keeps its run folder's name
        "t.safetensors",
    ]
    assert shipped.training["teachers"][0]["sha256"] == meta.training["teachers"][0]["sha256"]
    assert shipped.training["init"] == {
        **meta.training["init"],
        "checkpoint": f"{run_dir.name}/best.safetensors",
    }
    written = json.dumps(vars(shipped), default=str)
    assert str(tmp_path) not in written and str(run_dir) not in written and "/old/" not in written
    assert {t.dtype for k, t in load_file(out).items() if t.is_floating_point()} == {torch.float16}
    fp16, _ = load_checkpoint(out)
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(fp16.float().eval()(x), model.eval()(x), atol=2e-2)


# --- evaluate and compare ------------------------------------------------------------------

REPORT_FILES = [
    "metrics.json",
    "classification_report.txt",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "learning_curves.png",
    "gallery.png",
]


@pytest.mark.slow
def test_evaluate_cli_prints_json_and_writes_report(
    run_dir: Path,
    fer_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = run_dir / "best.safetensors"
    assert (
        cli(["evaluate", "--checkpoint", str(ckpt), "--data", str(fer_dir), "--threads", "1", "--tta-flip"])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) == {
        "checkpoint",
        "data",
        "n",
        "top1",
        "macro_f1",
        "per_class",
        "tta_flip",
        "temperature",
        "ece",
        "ece_uncalibrated",
    }
    assert result["n"] == 28 and result["tta_flip"] is True
    assert result["temperature"] == read_meta(ckpt).temperature != 1.0  # calibrated by training
    assert 0 <= result["ece"] <= 1 and 0 <= result["ece_uncalibrated"] <= 1
    assert list(result["per_class"]) == list(FER_LABELS)
    assert [v["support"] for v in result["per_class"].values()] == [1, 2, 3, 4, 5, 6, 7]
    report = tmp_path / f"report-{run_dir.name}-{fer_dir.name}-test"  # in the current folder
    assert not list(run_dir.glob("report*"))
    for name in REPORT_FILES:
        assert (report / name).stat().st_size > 0, name
    rows = (report / "confusion_matrix.csv").read_text().splitlines()
    cm = np.array([[int(v) for v in r.split(",")[1:]] for r in rows[1:]])
    assert cm.shape == (7, 7) and cm.sum() == 28
    assert result["top1"] == pytest.approx(np.trace(cm) / 28)
    assert json.loads((report / "metrics.json").read_text())["confusion_matrix"] == cm.tolist()


@pytest.mark.slow
def test_evaluate_maps_labels_by_name(run_dir: Path, fer_dir: Path, tmp_path: Path) -> None:
    """A checkpoint whose label order is reversed is scored against the right classes."""
    model, meta = load_checkpoint(run_dir / "best.safetensors")
    meta.labels = list(reversed(meta.labels))
    ckpt = save_checkpoint(tmp_path / "reversed.safetensors", model, meta)
    report = tmp_path / "report"
    summary = cli_json(
        [
            "evaluate",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(fer_dir),
            "--threads",
            "1",
            "--report",
            str(report),
        ]
    )
    assert list(summary["per_class"]) == list(reversed(FER_LABELS))
    assert {k: v["support"] for k, v in summary["per_class"].items()} == {
        n: k + 1 for k, n in enumerate(FER_LABELS)
    }
    assert not (report / "learning_curves.png").exists()  # no history.json next to it


def test_evaluate_default_data_follows_vidaffect_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDAFFECT_DATA", str(tmp_path))
    assert evaluate.default_data() == tmp_path / "fer2013"
    assert evaluate.dataset_name(tmp_path / "fer2013.csv", "private") == "fer2013-private"


@pytest.mark.slow
def test_evaluate_rejects_a_class_unknown_to_the_model(run_dir: Path, tmp_path: Path) -> None:
    data = write_folder(tmp_path / "odd", {"happy": 1, "contempt": 1})
    args = [
        "evaluate",
        "--checkpoint",
        str(run_dir / "best.safetensors"),
        "--data",
        str(data),
        "--threads",
        "1",
        "--report",
        str(tmp_path / "r"),
    ]
    assert cli(args) == 1
    with pytest.raises(CheckpointError, match="contempt"):
        evaluate.map_labels(load(data), list(FER_LABELS))


def cli_json(argv: list[str]) -> Any:
    """Run the CLI, assert exit code 0, parse its stdout as JSON."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli(argv) == 0
    return json.loads(buf.getvalue())


@pytest.mark.slow
def test_compare_prints_a_row_per_checkpoint(
    run_dir: Path, fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, meta = load_checkpoint(run_dir / "best.safetensors")
    other = save_checkpoint(tmp_path / "other.safetensors", model, meta, dtype=torch.float16)
    targets = [str(run_dir), str(other)]
    assert cli(["compare", *targets, "--threads", "1", "--repeats", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "arch", "params(M)"]
    assert [ln.split()[0] for ln in lines[1:3]] == ["lenet", "other"]
    assert all(ln.split()[-1] == "-" for ln in lines[1:3])  # no test metrics without --data

    rows = cli_json(
        ["compare", *targets, "--data", str(fer_dir), "--threads", "1", "--repeats", "2", "--json"]
    )
    assert len(rows) == 2
    for row in rows:
        assert row["arch"] == "lenet5"
        assert row["params_m"] == pytest.approx(61451 / 1e6)  # LeNet-5, 7 classes
        # conv1 6x44x44x25 + conv2 16x18x18x150 + fc 400x120 + 120x84 + 84x7
        assert row["mmacs"] == pytest.approx(1.126668)
        assert row["ms_b1"] > 0 and row["ms_b32"] > 0
        assert 0 <= row["test_top1"] <= 1 and row["test_source"].endswith("test")
