"""The margin contact sheet: real faces found, classified at each margin, drawn and listed."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from conftest import DATA, NEEDS_DATA

from vidaffect.errors import SourceError


@pytest.mark.slow
@NEEDS_DATA
def test_sheet_lists_every_face_at_every_margin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import margin_sheet

    photo = DATA / "photos" / "dlib_2008_002470.jpg"
    lines = (DATA / "photos" / "faces.jsonl").read_text().splitlines()
    expected = {json.loads(line)["file"]: json.loads(line)["faces_p95"] for line in lines}
    clip = DATA / "videos" / "liveportrait_d12.mp4"
    out = tmp_path / "sheet.png"
    margins = ["--margin", "0", "--margin", "0.1", "--margin", "0.3"]
    result = margin_sheet.main(
        [
            "--checkpoint",
            "default",
            *margins,
            "--image",
            str(photo),
            "--video",
            str(clip),
            "--frames",
            "0,90,100000",
            "--out",
            str(out),
        ]
    )
    # the photo's faces (those at least 40 px high) plus one face in each of the clip's two frames
    # that exist (frame 100000 is past its end)
    assert 2 < result["faces"] <= expected[photo.name] + 2
    assert result["margins"] == [0.0, 0.1, 0.3]
    assert all(len(row) == 3 for row in result["labels"]) and len(result["labels"]) == result["faces"]
    assert result["changed"] == [i for i, row in enumerate(result["labels"]) if len(set(row)) > 1]
    sheet = cv2.imread(str(out))
    rows = -(-result["faces"] // 10)
    assert sheet.shape == (rows * (96 + 14 * 3), 960, 3)
    text = capsys.readouterr().out
    assert f"top-1 changed between margins on {len(result['changed'])}" in text
    for i in result["changed"]:
        assert f"| {i} " in text


@NEEDS_DATA
def test_unreadable_inputs_are_named(tmp_path: Path) -> None:
    from benchmarks import margin_sheet

    with pytest.raises(SourceError, match="cannot read image .*nothing.jpg"):
        margin_sheet.main(["--image", str(tmp_path / "nothing.jpg"), "--out", str(tmp_path / "s.png")])
    with pytest.raises(SourceError, match="cannot open video .*nothing.mp4"):
        margin_sheet.main(["--video", str(tmp_path / "nothing.mp4"), "--out", str(tmp_path / "s.png")])
