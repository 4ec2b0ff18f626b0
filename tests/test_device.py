"""The ``device`` option of the models' plugins: a GPU where one is asked for and exists, a clear
error before the run where it does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidaffect.config import validate
from vidaffect.errors import PluginError
from vidaffect.models.device import resolve_device
from vidaffect.runtime.graph import preflight
from vidaffect_plugins.classifiers.fer import FERClassifier
from vidaffect_plugins.detectors.mtcnn import MTCNNDetector

NEEDS_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU that PyTorch sees: runs the detector and classifier there and compares with the CPU",
)


def test_auto_is_the_cpu_without_a_gpu_and_a_bad_device_is_refused_by_the_config() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto", "test").type == expected
    with pytest.raises(Exception, match="device"):
        validate(
            {
                "source": {"type": "video", "uri": __file__},
                "detector": {"type": "mtcnn", "device": "gpu"},
                "sinks": [{"type": "jsonl", "path": "e"}],
            },
            "p.yaml",
        )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where there is no GPU")
def test_asking_for_a_gpu_that_is_not_there_fails_before_the_run() -> None:
    cfg = validate(
        {
            "source": {"type": "fake_camera", "uri": __file__},
            "classifier": {"type": "fer", "device": "cuda"},
            "sinks": [{"type": "jsonl", "path": "e"}],
        },
        "p.yaml",
    )
    with pytest.raises(
        PluginError, match="stage 'classifier': fer classifier: device 'cuda', but PyTorch sees no GPU"
    ):
        preflight(cfg)


@NEEDS_CUDA
def test_the_models_run_on_the_gpu_and_agree_with_the_cpu() -> None:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (64, 64, 3), np.uint8) for _ in range(8)]
    cpu, gpu = FERClassifier(FERClassifier.Config()), FERClassifier(FERClassifier.Config(device="cuda"))
    cpu.open()
    gpu.open()
    assert next(gpu.model.parameters()).is_cuda
    np.testing.assert_allclose(cpu.predict(crops), gpu.predict(crops), atol=2e-3)
    img = np.zeros((240, 320, 3), np.uint8)
    det = MTCNNDetector(MTCNNDetector.Config(device="cuda"))
    det.open()
    assert len(det.detect([img])[0]) == 0
