"""The real-faces benchmark: its label file, faces found again by MTCNN, scores per margin."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from conftest import DATA, NEEDS_DATA

from vidaffect.errors import ConfigError, SourceError

FER_CLASSES = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


def write(path: Path, faces: list[dict]) -> Path:
    path.write_text("".join(json.dumps(f) + "\n" for f in faces))
    return path


@NEEDS_DATA
def test_the_label_file_names_real_frames_and_fer_classes() -> None:
    from benchmarks.real_faces import LABELS, read_labels

    faces = read_labels(LABELS)
    assert len(faces) == 241 and {f["label"] for f in faces} <= FER_CLASSES
    for f in faces:
        assert (DATA / f["file"]).is_file(), f["file"]
        x1, y1, x2, y2 = f["bbox"]
        assert x2 - x1 > 20 and y2 - y1 >= 40  # MTCNN boxes at least 40 px high
    lengths = {}
    for f in faces:
        if f["frame"] is not None:
            if f["file"] not in lengths:
                cap = cv2.VideoCapture(str(DATA / f["file"]))
                lengths[f["file"]] = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
                cap.release()
            assert 0 <= f["frame"] < lengths[f["file"]]


def test_bad_label_lines_are_named_with_file_and_line(tmp_path: Path) -> None:
    from benchmarks.real_faces import read_labels

    good = {"file": "photos/a.jpg", "bbox": [0, 0, 50, 60], "label": "happy"}
    for bad, why in (
        ("{not json", "Expecting property name"),
        (json.dumps({**good, "bbox": [0, 0, 50]}), "bbox needs 4 numbers"),
        (json.dumps({"file": "photos/a.jpg", "bbox": [0, 0, 50, 60]}), "'label'"),
    ):
        path = tmp_path / "labels.jsonl"
        path.write_text(json.dumps(good) + "\n\n" + bad + "\n")
        with pytest.raises(ConfigError, match=rf"labels.jsonl:3: bad labelled face .*{why}"):
            read_labels(path)
    assert read_labels(write(tmp_path / "ok.jsonl", [good]))[0] == {**good, "frame": None}
    with pytest.raises(ConfigError, match="cannot read the label file .*none.jsonl"):
        read_labels(tmp_path / "none.jsonl")


@pytest.mark.slow
@NEEDS_DATA
def test_faces_found_again_are_scored_per_margin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import real_faces

    photo = "photos/dlib_2008_002470.jpg"
    mine = [
        f
        for f in real_faces.read_labels(real_faces.LABELS)
        if f["file"] in (photo, "videos/liveportrait_d12.mp4")
    ]
    mine = [{k: v for k, v in f.items() if v is not None} for f in mine[:6]]  # 4 photo faces, 2 frames
    nowhere = {"file": photo, "bbox": [0, 0, 20, 40], "label": "sad"}  # no face there
    labels = write(tmp_path / "mine.jsonl", [*mine, nowhere])
    results = real_faces.main(
        ["--labels", str(labels), "--checkpoint", "default", "--margin", "0", "--margin", "0.3"]
    )
    assert [r["margin"] for r in results] == [0.0, 0.3]
    first, second = results
    # 6 faces found: each face right or wrong, so top-1 moves by the faces that changed side
    assert all(r["top1"] * 6 / 100 == pytest.approx(round(r["top1"] * 6 / 100)) for r in results)
    assert second["top1"] - first["top1"] == pytest.approx(
        100 * (second["only_here"] - second["only_first"]) / 6
    )
    assert first["only_here"] == first["only_first"] == 0
    assert set(first["recall"]) == {f["label"] for f in mine}
    text = capsys.readouterr().out
    assert "6 of 7 labelled real faces found again" in text and "faces right vs margin 0" in text

    with pytest.raises(ConfigError, match="labels \\['sadness'\\] are not classes of default"):
        real_faces.main(["--labels", str(write(tmp_path / "x.jsonl", [{**mine[0], "label": "sadness"}]))])


@NEEDS_DATA
def test_missing_files_and_frames_are_named(tmp_path: Path) -> None:
    from benchmarks.real_faces import images_of, read_labels

    face = {"bbox": [0, 0, 50, 60], "label": "happy"}
    with pytest.raises(SourceError, match="cannot read image .*nothing.jpg"):
        images_of(read_labels(write(tmp_path / "a.jsonl", [{**face, "file": "photos/nothing.jpg"}])), DATA)
    past_end = {**face, "file": "videos/liveportrait_d12.mp4", "frame": 100000}
    with pytest.raises(SourceError, match="liveportrait_d12.mp4 has no frame 100000"):
        images_of(read_labels(write(tmp_path / "b.jsonl", [past_end])), DATA)
