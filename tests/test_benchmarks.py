"""The training-throughput benchmark: model specs, a real (tiny) measurement, bad input."""

from __future__ import annotations

import pytest
import torch

from benchmarks import train_speed
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
