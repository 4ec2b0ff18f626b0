"""Real faces at several crop margins: where the label changes, and a contact sheet to judge it by eye.

    python -m benchmarks.margin_sheet [--checkpoint robust] [--margin 0 --margin 0.1]
                                      [--image FILE ...] [--video FILE ...] [--frames 10,60,120,200]
                                      [--out margin_sheet.png]

FER-2013 test faces placed in frames (:mod:`benchmarks.pipeline_crop`) have labels but are not a
camera's faces; real faces have no labels here. This tool closes the loop by eye: it finds the
faces in real images and video frames with the ``mtcnn`` plugin (score >= 0.95, box at least
40 px high), classifies each through the ``fer`` plugin at every ``--margin``, prints the faces
whose top-1 differs between margins, and writes a contact sheet (each face at the first margin,
96x96, numbered, with its top-1 per margin below it) so a person can say which margin was right.
By default: the group photos and four frames of each clip in ``$VIDAFFECT_DATA`` (one face per
clip frame in most). Point ``--image``/``--video`` at your own camera's stills or recordings
to choose the margin for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import print_table, read_frames
from vidaffect.errors import SourceError
from vidaffect.sample_data import data_dir
from vidaffect_plugins.capture import decode_image
from vidaffect_plugins.classifiers.crops import square_crop

CLIPS = (
    "liveportrait_d0",
    "liveportrait_d9",
    "liveportrait_d10",
    "liveportrait_d11",
    "fer_woman2",
    "tpsmm_driving",
    "liveportrait_src_s18",
    "liveportrait_d3",
)


def sources(images: list[str], videos: list[str], frames: list[int]) -> list[tuple[str, np.ndarray]]:
    """``(name, BGR image)`` for every image file and every chosen frame of every video.

    Raises:
        SourceError: an image or video cannot be read.
    """
    out = []
    for p in images:
        img = decode_image(Path(p))
        if img is None:
            raise SourceError(f"cannot read image {p}")
        out.append((Path(p).name, img))
    for v in videos:
        got = read_frames(Path(v), set(frames))  # frames past the video's end are left out
        out.extend((f"{Path(v).stem}#{i}", img) for i, img in sorted(got.items()))
    return out


def find_faces(
    named: list[tuple[str, np.ndarray]], min_score: float, min_height: float
) -> list[dict[str, Any]]:
    """Every face the ``mtcnn`` plugin finds at ``min_score`` with a box ``min_height`` px high."""
    from vidaffect_plugins.detectors.mtcnn import MTCNNDetector

    detector = MTCNNDetector(MTCNNDetector.Config())
    detector.open()
    faces = []
    for name, img in named:
        for f in detector.detect([img])[0].to_faces():
            if f["score"] >= min_score and f["bbox"][3] - f["bbox"][1] >= min_height:
                faces.append({"source": name, "image": img, "bbox": f["bbox"]})
    return faces


def contact_sheet(faces: list[dict[str, Any]], margins: list[float], labels: list[list[str]]) -> np.ndarray:
    """uint8 BGR grid, 10 tiles a row: each face cropped at ``margins[0]``, 96x96, its number at
    the top and its top-1 at each margin below (``labels[i][j]``: face i, margin j)."""
    tiles = []
    for i, f in enumerate(faces):
        tile = np.zeros((96 + 14 * len(margins), 96, 3), np.uint8)
        tile[:96] = cv2.resize(
            square_crop(f["image"], f["bbox"], margins[0]), (96, 96), interpolation=cv2.INTER_AREA
        )
        cv2.putText(tile, str(i), (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
        for j, m in enumerate(margins):
            colour = (255, 255, 255) if labels[i][j] == labels[i][0] else (0, 200, 255)
            cv2.putText(
                tile, f"{m:g}: {labels[i][j]}", (2, 108 + 14 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.38, colour, 1
            )
        tiles.append(tile)
    while len(tiles) % 10:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[k : k + 10]) for k in range(0, len(tiles), 10)])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="robust")
    ap.add_argument("--margin", type=float, action="append", default=None, help="repeat (default: 0 and 0.1)")
    ap.add_argument("--image", action="append", default=None, help="an image file (repeat)")
    ap.add_argument("--video", action="append", default=None, help="a video file (repeat)")
    ap.add_argument("--frames", default="10,60,120,200", help="frame numbers taken from each video")
    ap.add_argument("--out", default="margin_sheet.png", help="the contact sheet (PNG)")
    args = ap.parse_args(argv)
    from vidaffect_plugins.classifiers.fer import FERClassifier

    margins = args.margin or [0.0, 0.1]
    if args.image is None and args.video is None:
        data = data_dir()
        images = sorted(str(p) for p in (data / "photos").glob("*.jpg"))
        videos = [str(data / "videos" / f"{c}.mp4") for c in CLIPS]
    else:
        images, videos = args.image or [], args.video or []
    faces = find_faces(sources(images, videos, [int(v) for v in args.frames.split(",")]), 0.95, 40)
    if not faces:
        raise SystemExit(
            "no face found (MTCNN score >= 0.95, box >= 40 px high) in the given images and frames"
        )
    classifier = FERClassifier(FERClassifier.Config(checkpoint=args.checkpoint))
    classifier.open()
    top1 = np.stack(
        [
            classifier.predict([square_crop(f["image"], f["bbox"], m) for f in faces]).argmax(1)
            for m in margins
        ],
        1,
    )
    labels = [[classifier.labels[k] for k in row] for row in top1]
    changed = [i for i, row in enumerate(top1) if len(set(row.tolist())) > 1]
    print_table(
        f"{args.checkpoint}: {len(faces)} faces, top-1 changed between margins on {len(changed)}",
        ["face", "source", *(f"margin {m:g}" for m in margins)],
        [[i, faces[i]["source"], *labels[i]] for i in changed],
    )
    cv2.imwrite(args.out, contact_sheet(faces, margins, labels))
    print(f"contact sheet: {args.out}")
    return {"faces": len(faces), "changed": changed, "labels": labels, "margins": margins}


if __name__ == "__main__":
    from pydantic import ValidationError

    from vidaffect.errors import VidaffectError

    try:
        main()
    except (VidaffectError, ValidationError) as exc:  # a missing file, a bad checkpoint name
        raise SystemExit(f"margin_sheet: {exc}") from None
