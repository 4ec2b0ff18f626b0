"""Real faces labelled by eye: top-1 and per-class recall through the pipeline's crop, per margin.

    python -m benchmarks.real_faces [--checkpoint default --checkpoint robust ...]
                                    [--margin 0 --margin 0.1 ...] [--labels FILE]

FER-2013 faces placed in frames (:mod:`benchmarks.pipeline_crop`) have labels but are not a
camera's faces. ``real_faces.jsonl`` beside this file labels real ones: faces in the clips and
group photos of ``$VIDAFFECT_DATA``, labelled by eye by the project's developers (FER-2013's
seven classes) from 160x160 crops with context, before any model's answer was seen; a face
whose expression was not clear to the eye was left out. The frames are every 15th of every
clip from frame 5 and from frame 12; 241 of the 539 faces MTCNN finds there and in the photos
(score >= 0.95, box at least 40 px high) are labelled. Faces of one clip are alike (one
person, seconds apart), so read the figures as a check of direction, not as an accuracy.

Each listed frame goes through the real ``mtcnn`` plugin; a labelled face counts where a
detected box overlaps its stored box at IoU >= 0.5 (the stored box is MTCNN's at labelling
time, so a change of detector shows up as faces not found), and is then classified through
the ``fer`` plugin's crop at every ``--margin``. Printed per checkpoint and margin: top-1,
per-class recall, and the faces that only this margin or only the first one gets right.

Label file format, one JSON object per line: ``file`` (relative to the data folder), ``frame``
(0-based; videos only), ``bbox`` ([x1, y1, x2, y2] pixels of that frame) and ``label``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import print_table, read_frames
from benchmarks.robustness import recall_per_class
from vidaffect.errors import ConfigError, SourceError
from vidaffect.imaging.boxes import iou
from vidaffect.sample_data import data_dir
from vidaffect_plugins.capture import decode_image
from vidaffect_plugins.classifiers.crops import square_crop

LABELS = Path(__file__).with_name("real_faces.jsonl")
MIN_IOU = 0.5


def read_labels(path: Path) -> list[dict[str, Any]]:
    """The labelled faces of a ``real_faces.jsonl``-style file.

    Raises:
        ConfigError: the file cannot be read, or a line is not JSON or lacks ``file``, ``bbox``
            (4 numbers) or ``label``; the message names the file and line.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the label file {path}: {exc.strerror}") from None
    faces = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            face = json.loads(line)
            bbox = [float(v) for v in face["bbox"]]
            if len(bbox) != 4 or not isinstance(face["file"], str) or not isinstance(face["label"], str):
                raise ValueError("bbox needs 4 numbers, file and label strings")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{n}: bad labelled face ({exc})") from None
        faces.append({"file": face["file"], "frame": face.get("frame"), "bbox": bbox, "label": face["label"]})
    return faces


def images_of(faces: list[dict[str, Any]], data: Path) -> dict[tuple[str, int | None], np.ndarray]:
    """BGR uint8 image of every ``(file, frame)`` the labels name, each video read in one pass.

    Raises:
        SourceError: a file cannot be read, or a video is shorter than a labelled frame.
    """
    frames: dict[str, set[int]] = defaultdict(set)
    images: dict[tuple[str, int | None], np.ndarray] = {}
    for f in faces:
        if f["frame"] is None:
            img = decode_image(data / f["file"])
            if img is None:
                raise SourceError(f"cannot read image {data / f['file']}")
            images[(f["file"], None)] = img
        else:
            frames[f["file"]].add(int(f["frame"]))
    for file, wanted in frames.items():
        got = read_frames(data / file, wanted)
        if missing := sorted(wanted - set(got)):
            raise SourceError(f"{data / file} has no frame {missing[0]} (labelled)")
        images.update({(file, i): img for i, img in got.items()})
    return images


def found_faces(
    faces: list[dict[str, Any]], images: dict[tuple[str, int | None], np.ndarray]
) -> list[dict[str, Any]]:
    """The labelled faces MTCNN finds again: each with its ``image`` and the detected ``bbox``
    (the best IoU >= :data:`MIN_IOU` with the stored box), others left out."""
    from vidaffect_plugins.detectors.mtcnn import MTCNNDetector

    detector = MTCNNDetector(MTCNNDetector.Config())
    detector.open()
    detected = {key: detector.detect([img])[0].to_faces() for key, img in images.items()}
    out = []
    for f in faces:
        key = (f["file"], None if f["frame"] is None else int(f["frame"]))
        scored = [(iou(d["bbox"], f["bbox"]), d["bbox"]) for d in detected[key]]
        best = max(scored, default=(0.0, None), key=lambda s: s[0])
        if best[0] >= MIN_IOU:
            out.append({**f, "image": images[key], "bbox": [float(v) for v in best[1]]})
    return out


def score(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """``top1`` (%), ``recall`` per class present in ``truth`` (%, by name), and ``right`` (bool
    per face), from class indices int ``(N,)`` into ``classes``."""
    right = truth == predicted
    recall = recall_per_class(truth, predicted, len(classes)) * 100
    present = {c: float(r) for c, r in zip(classes, recall) if not np.isnan(r)}
    return {"top1": float(right.mean() * 100), "recall": present, "right": right}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--checkpoint", action="append", default=None, help="repeat (default: default and robust)"
    )
    ap.add_argument("--margin", type=float, action="append", default=None, help="repeat (default: 0 and 0.1)")
    ap.add_argument("--labels", type=Path, default=LABELS, help="labelled faces (JSON lines)")
    args = ap.parse_args(argv)
    from vidaffect_plugins.classifiers.fer import FERClassifier

    margins = args.margin or [0.0, 0.1]
    labelled = read_labels(args.labels)
    faces = found_faces(labelled, images_of(labelled, data_dir()))
    if not faces:
        raise SystemExit(f"none of the {len(labelled)} labelled faces was found again by MTCNN")
    labels = [f["label"] for f in faces]
    rows, results = [], []
    for name in args.checkpoint or ["default", "robust"]:
        classifier = FERClassifier(FERClassifier.Config(checkpoint=name))
        classifier.open()
        if unknown := sorted(set(labels) - set(classifier.labels)):
            raise ConfigError(f"{args.labels}: labels {unknown} are not classes of {name}")
        truth = np.array([classifier.labels.index(lab) for lab in labels])
        first = None
        for m in margins:
            top = classifier.predict([square_crop(f["image"], f["bbox"], m) for f in faces]).argmax(1)
            s = score(truth, top, classifier.labels)
            first = s["right"] if first is None else first
            only_here, only_first = int((s["right"] & ~first).sum()), int((first & ~s["right"]).sum())
            results.append(
                {
                    "checkpoint": name,
                    "margin": m,
                    "top1": s["top1"],
                    "recall": s["recall"],
                    "only_here": only_here,
                    "only_first": only_first,
                }
            )
            rows.append(
                [
                    name,
                    f"{m:g}",
                    f"{s['top1']:.1f}",
                    *(f"{s['recall'][c]:.0f}" for c in s["recall"]),
                    "-" if m == margins[0] else f"+{only_here} / -{only_first}",
                ]
            )
    classes = list(results[0]["recall"])
    counts = ", ".join(f"{c} {labels.count(c)}" for c in classes)
    print_table(
        f"{len(faces)} of {len(labelled)} labelled real faces found again ({counts})",
        [
            "checkpoint",
            "margin",
            "top-1 %",
            *(f"{c} %" for c in classes),
            f"faces right vs margin {margins[0]:g}",
        ],
        rows,
    )
    return results


if __name__ == "__main__":
    from pydantic import ValidationError

    from vidaffect.errors import VidaffectError

    try:
        main()
    except (VidaffectError, ValidationError) as exc:  # a missing file, a bad label line or checkpoint
        raise SystemExit(f"real_faces: {exc}") from None
