"""``vidaffect.analyze``: one image in, faces with boxes, landmarks and emotions out, in this
process; the same answer as the images pipeline gives for the same photo."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import read_events, run_cli, write_config

import vidaffect
from vidaffect.analytics import analyze as analysis

PHOTOS = DATA / "photos"
FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@NEEDS_DATA
def test_a_group_photo_gives_every_face_with_box_landmarks_and_emotion() -> None:
    path = PHOTOS / "fr_two_people.jpg"
    height, width = cv2.imread(str(path)).shape[:2]
    faces = vidaffect.analyze(path)
    assert len(faces) == 2
    for face in faces:
        x1, y1, x2, y2 = face["bbox"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert len(face["landmarks"]) == 5
        assert all(x1 - 5 <= x <= x2 + 5 and y1 - 5 <= y <= y2 + 5 for x, y in face["landmarks"])
        emotion = face["emotion"]
        assert list(emotion["probs"]) == FER_LABELS and sum(emotion["probs"].values()) == pytest.approx(
            1, abs=1e-3
        )
        assert emotion["probs"][emotion["label"]] == emotion["score"] == max(emotion["probs"].values())
        assert "track_id" not in face


@NEEDS_DATA
def test_path_array_and_grayscale_inputs_and_models_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "_ANALYZERS", {})
    path = PHOTOS / "dlib_2008_001009.jpg"
    image = cv2.imread(str(path))
    from_path = vidaffect.analyze(str(path), detector_options={"preset": "accurate"})
    assert from_path == vidaffect.analyze(image, detector_options={"preset": "accurate"})
    assert len(analysis._ANALYZERS) == 1  # the second call reused the loaded models
    gray = vidaffect.analyze(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), detector_options={"preset": "accurate"})
    assert len(gray) >= 1 and len(analysis._ANALYZERS) == 1
    vidaffect.analyze(image, detector="haar")
    assert len(analysis._ANALYZERS) == 2
    assert [f for f in vidaffect.analyze(np.zeros((120, 160, 3), np.uint8))] == []  # no face


@pytest.mark.slow
@NEEDS_DATA
def test_the_same_faces_and_labels_as_the_images_pipeline(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("fr_two_people.jpg", "dlib_2008_001009.jpg"):
        shutil.copy(PHOTOS / name, folder / name)
    events = tmp_path / "events.jsonl"
    cfg = write_config(
        tmp_path,
        {
            "source": {"type": "images", "uri": str(folder)},
            "detector": {"type": "mtcnn"},
            "classifier": {"type": "fer"},
            "sinks": [{"type": "jsonl", "path": str(events)}],
        },
    )
    proc = run_cli("run", str(cfg), "--no-status", timeout=300)
    assert proc.returncode == 0, proc.stderr
    for event in read_events(events):
        faces = vidaffect.analyze(folder / event["image_file"])
        assert len(faces) == len(event["faces"]) >= 1
        np.testing.assert_allclose([f["bbox"] for f in faces], [f["bbox"] for f in event["faces"]], atol=0.05)
        assert [f["emotion"]["label"] for f in faces] == [f["emotion"]["label"] for f in event["faces"]]
        assert [f["emotion"]["score"] for f in faces] == pytest.approx(
            [f["emotion"]["score"] for f in event["faces"]], abs=2e-3
        )


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image not found"):
        analysis.read_image(tmp_path / "none.jpg")
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not an image OpenCV can decode"):
        analysis.read_image(tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\) BGR array, got float32 \(4, 4, 3\)"):
        analysis.read_image(np.zeros((4, 4, 3), np.float32))
    from test_sources import huge_png

    with pytest.raises(ValueError, match=r"bomb.png: 20000x20000 PNG image \(400 MP\) is above the limit"):
        analysis.read_image(huge_png(tmp_path / "bomb.png"))
