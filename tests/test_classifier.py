"""The FER classifier plugin: crops, batching, checkpoint errors, a real face from a real clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import DATA, NEEDS_DATA

from vidaffect.errors import CheckpointError
from vidaffect.frames import Frame
from vidaffect.models import create_model
from vidaffect.models.checkpoint import CheckpointMeta, save_checkpoint
from vidaffect.models.zoo import resolve_checkpoint, shipped_models
from vidaffect_plugins.classifiers.crops import square_crop, to_model_input
from vidaffect_plugins.classifiers.fer import FERClassifier
from vidaffect_plugins.detectors.mtcnn import MTCNNDetector


def test_square_crop_inside_and_at_border() -> None:
    img = np.arange(100 * 120 * 3, dtype=np.uint8).reshape(100, 120, 3)
    crop = square_crop(img, [40, 30, 60, 70], margin=0.1)  # 20x40 box -> 48x48 square
    assert crop.shape == (48, 48, 3)
    assert np.array_equal(crop[4, 4], img[30 - 4 + 4, 50 - 24 + 4])
    edge = square_crop(img, [-10, -10, 30, 30], margin=0.0)
    assert edge.shape == (40, 40, 3)
    assert np.array_equal(edge[0, 0], img[0, 0])  # replicated border


def test_model_input_normalised_gray() -> None:
    crops = [np.full((60, 60, 3), 255, np.uint8), np.zeros((30, 30, 3), np.uint8)]
    x = to_model_input(crops, (48, 48), 1, [0.5], [0.25])
    assert x.shape == (2, 1, 48, 48) and x.dtype == np.float32
    assert np.allclose(x[0], 2.0) and np.allclose(x[1], -2.0)


def test_shipped_default_model_resolves() -> None:
    assert "resnet18" in shipped_models()
    assert resolve_checkpoint("default") == shipped_models()["resnet18"]


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_every_shipped_model_loads_and_classifies(name: str) -> None:
    from vidaffect.models.meta import read_meta
    from vidaffect_plugins.classifiers.fer import FERClassifier

    meta = read_meta(shipped_models()[name])
    assert (
        meta.arch == {"robust": "resnet18", "accurate": "ensemble"}.get(name, name)
        and meta.metrics["test_top1"] > 0.5
        and meta.metrics["test_data"] == "fer2013/test"
    )
    clf = FERClassifier(FERClassifier.Config(checkpoint=name))
    clf.open()
    probs = clf.predict([np.random.default_rng(0).integers(0, 256, (80, 80, 3), np.uint8)])
    assert probs.shape == (1, 7) and abs(float(probs.sum()) - 1) < 1e-4


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_shipped_metadata_holds_no_machine_paths(name: str) -> None:
    from vidaffect.models.meta import read_meta

    def strings(value: object) -> list[str]:
        if isinstance(value, dict):
            return [s for k, v in value.items() for s in (str(k), *strings(v))]
        if isinstance(value, list | tuple):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    found = strings(vars(read_meta(shipped_models()[name])))
    assert found  # the walk reached the metadata's text
    assert [s for s in found if s.startswith(("/", "~")) or ":\\" in s] == []


def test_missing_and_incompatible_checkpoints_fail_at_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a shipped model"):
        FERClassifier.Config(checkpoint=str(tmp_path / "none.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        FERClassifier.Config(checkpoint=str(junk))
    meta = CheckpointMeta("lenet5", ["a"] * 26, (48, 48), 1, [0.5], [0.25], task="multilabel")
    ml = save_checkpoint(tmp_path / "ml.safetensors", create_model("lenet5", 26), meta)
    with pytest.raises(ValueError, match="multilabel model"):
        FERClassifier.Config(checkpoint=str(ml))


def nan_checkpoint(tmp_path: Path) -> Path:
    """A real FER checkpoint whose first convolution holds a NaN (damaged weights)."""
    model = create_model("lenet5", 7)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    meta = CheckpointMeta(
        "lenet5",
        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
        (48, 48),
        1,
        [0.5],
        [0.25],
    )
    return save_checkpoint(tmp_path / "damaged.safetensors", model, meta)


def test_non_finite_outputs_are_an_error_naming_the_checkpoint(tmp_path: Path) -> None:
    ckpt = nan_checkpoint(tmp_path)
    clf = FERClassifier(FERClassifier.Config(checkpoint=str(ckpt)))
    with pytest.raises(CheckpointError, match=r"damaged.safetensors.* gave \d+ non-finite outputs"):
        clf.open()  # its warm-up already sees them
    frame = Frame(
        np.full((80, 80, 3), 90, np.uint8),
        "s",
        0,
        0,
        meta={"faces": [{"bbox": [5, 5, 60, 60], "score": 1.0}]},
    )
    with pytest.raises(CheckpointError, match="non-finite"):
        clf.classify([frame])
    assert "emotion" not in frame.faces[0]


def test_batch_of_frames_gets_probabilities() -> None:
    clf = FERClassifier(FERClassifier.Config())
    clf.open()
    rng = np.random.default_rng(0)
    frames = [
        Frame(
            rng.integers(0, 255, (120, 160, 3), dtype=np.uint8),
            "s",
            i,
            0,
            meta={"faces": [{"bbox": [10, 10, 60, 70], "score": 1.0}] * i},
        )
        for i in range(3)
    ]
    clf.classify(frames)
    faces = [f for fr in frames for f in fr.faces]
    assert len(faces) == 3
    for face in faces:
        probs = np.array(face["emotion"]["probs"])
        assert probs.shape == (7,) and abs(probs.sum() - 1) < 1e-3
        assert face["emotion"]["label"] == clf.labels[int(probs.argmax())]
    assert frames[0].meta["labels"] == clf.labels


@NEEDS_DATA
def test_real_face_crop_matches_direct_model_call() -> None:
    cap = cv2.VideoCapture(str(DATA / "videos" / "liveportrait_d3.mp4"))
    ok, img = cap.read()
    assert ok
    det = MTCNNDetector(MTCNNDetector.Config())
    det.open()
    faces = det.detect([img])[0].to_faces()
    assert len(faces) == 1
    clf = FERClassifier(FERClassifier.Config())
    clf.open()
    frame = Frame(img, "s", 0, 0, meta={"faces": faces})
    clf.classify([frame])
    crop = square_crop(img, faces[0]["bbox"], FERClassifier.Config().margin)
    x = torch.from_numpy(to_model_input([crop], (48, 48), 1, clf.meta.mean, clf.meta.std))
    with torch.inference_mode():  # the calibrated softmax: logits over the checkpoint's temperature
        direct = torch.softmax(clf.model(x) / clf.meta.temperature, 1)[0].numpy()
    assert np.allclose(direct, frame.faces[0]["emotion"]["probs"], atol=1e-3)
