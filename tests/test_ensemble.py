"""Deep ensembles of FER checkpoints: ``arch: ensemble`` and ``vidaffect ensemble``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DATA, NEEDS_DATA

from vidaffect.errors import CheckpointError
from vidaffect.models import create_model
from vidaffect.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from vidaffect.models.zoo import resolve_checkpoint
from vidaffect_trainers.fer2013.data import FER_LABELS
from vidaffect_trainers.fer2013.ensemble import build


def member(path: Path, seed: int, mean: float, std: float, labels: list[str] | None = None) -> str:
    torch.manual_seed(seed)
    meta = CheckpointMeta(
        arch="lenet5",
        labels=list(labels or FER_LABELS),
        input_size=(48, 48),
        in_channels=1,
        mean=[mean],
        std=[std],
        training={"val_split": "stratified 0.1 of train, seed 0"},
    )
    save_checkpoint(path, create_model("lenet5", 7, 1), meta)
    return str(path)


def test_the_ensemble_averages_its_members_on_their_own_normalisation(tmp_path: Path) -> None:
    a = member(tmp_path / "a.safetensors", 0, 0.5, 0.25)
    b = member(tmp_path / "b.safetensors", 1, 0.4, 0.2)
    model, meta = build([a, b])
    assert meta.arch == "ensemble" and (meta.mean, meta.std) == ([0.5], [0.25])
    assert [m["checkpoint"] for m in meta.training["ensemble_of"]] == [a, b]
    pixels = torch.rand(4, 1, 48, 48)
    expected = []
    for path in (a, b):
        net, m = load_checkpoint(path)
        expected.append(F.log_softmax(net.eval()((pixels - m.mean[0]) / m.std[0]), 1))
    out = model((pixels - 0.5) / 0.25)
    assert out.shape == (4, 7)
    torch.testing.assert_close(out, torch.stack(expected).mean(0), atol=1e-5, rtol=1e-5)
    saved = tmp_path / "ens.safetensors"  # and it loads back as any checkpoint does
    save_checkpoint(saved, model, meta)
    again, _ = load_checkpoint(saved)
    torch.testing.assert_close(again.eval()((pixels - 0.5) / 0.25), out, atol=1e-5, rtol=1e-5)


def test_members_that_do_not_fit_together_are_refused(tmp_path: Path) -> None:
    a = member(tmp_path / "a.safetensors", 0, 0.5, 0.25)
    other = member(tmp_path / "o.safetensors", 1, 0.5, 0.25, labels=list(reversed(FER_LABELS)))
    with pytest.raises(CheckpointError, match="has labels"):
        build([a, other])
    with pytest.raises(CheckpointError, match="at least two"):
        build([a])
    with pytest.raises(CheckpointError, match="neither a shipped model"):
        build([a, str(tmp_path / "missing.safetensors")])


@pytest.mark.slow
@NEEDS_DATA
def test_ensemble_command_writes_a_calibrated_checkpoint_the_plugin_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vidaffect_plugins.classifiers.fer import FERClassifier
    from vidaffect_trainers.fer2013.__main__ import main as cli
    from vidaffect_trainers.fer2013.data import load

    out = tmp_path / "ens.safetensors"
    args = ["ensemble", "--member", "default", "--member", "alexnet", "--out", str(out)]
    assert cli([*args, "--data", str(DATA / "fer2013")]) == 0
    assert "2 members; temperature" in capsys.readouterr().out
    classifier = FERClassifier(FERClassifier.Config(checkpoint=str(out)))
    classifier.open()
    assert classifier.meta.arch == "ensemble" and classifier.meta.temperature != 1.0
    test = load(DATA / "fer2013", "test")
    happy = test.images[test.labels == list(test.label_names).index("happy")][:20]
    crops = [np.repeat(face[:, :, None], 3, 2) for face in happy]
    probs = classifier.predict(crops)
    assert probs.shape == (20, 7) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert (probs.argmax(1) == classifier.meta.labels.index("happy")).mean() >= 0.7


def test_a_shipped_member_is_referenced_not_copied_and_checked(tmp_path: Path) -> None:
    from safetensors import safe_open

    from vidaffect.models.meta import read_meta

    a = member(
        tmp_path / "a.safetensors", 0, 0.5, 0.25, labels=read_meta(resolve_checkpoint("default")).labels
    )
    model, meta = build(["default", a], reference_shipped=True)
    first, second = meta.arch_kwargs["members"]
    assert first["shipped"] == "resnet18" and len(first["sha256"]) == 64 and "shipped" not in second
    path = tmp_path / "ens.safetensors"
    save_checkpoint(path, model, meta)
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("members.1.") for k in keys)  # no copy of the shipped weights
    again, _ = load_checkpoint(path)
    pixels = torch.randn(3, 1, 48, 48)
    torch.testing.assert_close(again(pixels), model(pixels), atol=1e-5, rtol=1e-5)
    wrong = dict(first, sha256="0" * 64)  # built with another file than the one installed
    with pytest.raises(CheckpointError, match="not the file the ensemble was built"):
        create_model("ensemble", 7, 1, members=[wrong, second])
