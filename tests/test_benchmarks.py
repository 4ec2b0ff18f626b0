"""The training-throughput benchmark: model specs, a real (tiny) measurement, bad input."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("channels_last", [False, True])
def test_images_per_second_runs_real_training_steps(channels_last: bool) -> None:
    rate = train_speed.images_per_second("lenet5", {}, channels_last, batch_size=8, steps=2, warmup=1)
    assert 0 < rate < float("inf")


def test_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    train_speed.main(["lenet5", "--batch-size", "4", "--steps", "1", "--threads", "1"])
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
