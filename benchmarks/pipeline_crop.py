"""The pipeline's own face crop against the training framing, on FER-2013 test faces.

    python -m benchmarks.pipeline_crop [--checkpoint default] [--limit N] [--scale 3]

A FER-2013 face is a tight 48x48 crop; in a pipeline the classifier sees instead the MTCNN box
of a face in a larger frame, grown by the ``fer`` plugin's ``margin``, squared, resized and
turned gray. To measure that path on labelled faces, each test face is enlarged ``--scale``
times (bicubic) and placed in the middle of a frame three times its size whose border repeats
its edge pixels (no second face appears), then goes through the real detector plugin (MTCNN,
default options) and the classifier plugin's crop and input code. Printed: the detection
rate, and top-1 on the detected faces for each crop setting (``margin``, and ``offset_y``:
the crop centre moved down by that share of the box side; with ``--fit N`` also the framing
that maps the median MTCNN box of N training faces onto their own squares), next to the same faces classified
directly at 48x48 as in training, and through the plugin path with the face's own square as
the box (the training framing, so only the resize differs).
"""

from __future__ import annotations

import argparse
from typing import Any

import cv2
import numpy as np

from benchmarks.common import print_table
from benchmarks.robustness import stratified_limit
from vidaffect_plugins.classifiers.crops import square_crop
from vidaffect_plugins.classifiers.fer import FERClassifier
from vidaffect_trainers.fer2013.data import load
from vidaffect_trainers.fer2013.evaluate import default_data, map_labels
from vidaffect_trainers.fer2013.framing import best_face, frame_of
from vidaffect_trainers.fer2013.predict import predict_images

MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
OFFSETS = (-0.05, 0.0, 0.05, 0.1)


def shifted(bbox: list[float], offset_y: float) -> list[float]:
    """``bbox`` moved down by ``offset_y`` of its longer side."""
    x1, y1, x2, y2 = bbox
    d = offset_y * max(x2 - x1, y2 - y1)
    return [x1, y1 + d, x2, y2 + d]


def landmark_geometry(landmarks: list[list[float]]) -> tuple[np.ndarray, float, float]:
    """``(centre between the eyes' and the mouth's midpoints, eye-to-mouth distance, the
    eye line's angle in degrees)`` from MTCNN's five landmarks (eyes, nose, mouth corners)."""
    pts = np.asarray(landmarks, np.float64)
    eyes, mouth = pts[:2].mean(0), pts[3:5].mean(0)
    d = float(np.linalg.norm(mouth - eyes))
    angle = float(np.degrees(np.arctan2(pts[1, 1] - pts[0, 1], pts[1, 0] - pts[0, 0])))
    return (eyes + mouth) / 2, max(d, 1.0), angle


def fit_landmark_framing(truths: list[list[float]], faces: list[Any]) -> tuple[float, float]:
    """``(side, offset_y)`` in eye-to-mouth distances: the face's own square relative to the
    landmark centre, medians over faces with landmarks."""
    sides, shifts = [], []
    for t, f in zip(truths, faces):
        if f is None or not f.get("landmarks"):
            continue
        centre, d, _ = landmark_geometry(f["landmarks"])
        sides.append((t[2] - t[0]) / d)
        shifts.append(((t[1] + t[3]) / 2 - centre[1]) / d)
    return round(float(np.median(sides)), 3), round(float(np.median(shifts)), 3)


def landmark_crop(
    frame: np.ndarray, face: dict[str, Any], side: float, offset_y: float, rotate: bool
) -> np.ndarray:
    """A square of ``side`` eye-to-mouth distances around the landmark centre moved down by
    ``offset_y`` of them, turned so the eyes are level when ``rotate``."""
    centre, d, angle = landmark_geometry(face["landmarks"])
    s = max(1, int(round(side * d)))
    a = np.radians(angle if rotate else 0.0)
    down = np.array([-np.sin(a), np.cos(a)]) * offset_y * d  # "down" in the face's own frame
    cx, cy = centre + down
    m = cv2.getRotationMatrix2D((cx, cy), angle if rotate else 0.0, 1.0)
    m[:, 2] += (s / 2 - cx, s / 2 - cy)
    return cv2.warpAffine(frame, m, (s, s), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def detect(
    detector: Any, images: np.ndarray, scale: int
) -> tuple[list[np.ndarray], list[list[float]], list[Any]]:
    """Frames, true squares and the detected boxes (None where MTCNN found no such face)."""
    frames, truths, boxes = [], [], []
    for face in images:
        frame, truth = frame_of(face, scale)
        frames.append(frame)
        truths.append(truth)
        boxes.append(best_face(detector.detect([frame])[0].to_faces(), truth))
    return frames, truths, boxes  # boxes: the detected faces (bbox, landmarks), or None


def fit_framing(truths: list[list[float]], boxes: list[Any]) -> tuple[float, float]:
    """``(margin, offset_y)`` that turn a median MTCNN box into the face's own square:
    ``margin`` = (median side ratio - 1) / 2, ``offset_y`` = median vertical centre shift over
    the box side."""
    ratios, shifts = [], []
    for t, f in zip(truths, boxes):
        if f is None:
            continue
        b = f["bbox"]
        side = max(b[2] - b[0], b[3] - b[1])
        ratios.append((t[2] - t[0]) / side)
        shifts.append(((t[1] + t[3]) / 2 - (b[1] + b[3]) / 2) / side)
    return round(float((np.median(ratios) - 1) / 2), 3), round(float(np.median(shifts)), 3)


def classify_crops(classifier: Any, crops: list[np.ndarray]) -> np.ndarray:
    """Top-1 indices for BGR crops through the ``fer`` plugin's own input code and calibrated
    softmax (:meth:`FERClassifier.predict`)."""
    return classifier.predict(crops).argmax(1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--data", default=None, help="FER-2013 folder (default: $VIDAFFECT_DATA/fer2013)")
    ap.add_argument("--limit", type=int, default=0, help="at most N test faces, stratified (0: all 3,589)")
    ap.add_argument("--scale", type=int, default=3, help="enlargement of the 48 px faces (3: 144 px)")
    ap.add_argument(
        "--fit",
        type=int,
        default=0,
        metavar="N",
        help="also fit margin and offset_y on N training faces and test that framing",
    )
    args = ap.parse_args(argv)
    from vidaffect_plugins.detectors.mtcnn import MTCNNDetector

    data = args.data or default_data()
    faces = stratified_limit(load(data, "test"), args.limit)
    classifier = FERClassifier(FERClassifier.Config(checkpoint=args.checkpoint))
    classifier.open()
    model, meta = classifier.model, classifier.meta
    y = map_labels(faces, meta.labels)
    detector = MTCNNDetector(MTCNNDetector.Config())
    detector.open()
    fitted = None
    if args.fit:  # the framing, learnt on training faces (never on the test faces)
        train = stratified_limit(load(data, "train"), args.fit, seed=1)
        _, t_truths, t_boxes = detect(detector, train.images, args.scale)
        fitted = fit_framing(t_truths, t_boxes)
        by_landmarks = fit_landmark_framing(t_truths, t_boxes)
        print(
            f"framing fitted on {sum(b is not None for b in t_boxes)} training faces: "
            f"margin {fitted[0]}, offset_y {fitted[1]}; from the landmarks: side {by_landmarks[0]}, "
            f"offset_y {by_landmarks[1]} eye-to-mouth distances"
        )
    frames, truths, boxes = detect(detector, faces.images, args.scale)
    found = np.array([b is not None for b in boxes])
    direct = predict_images(model, meta, faces.images).argmax(1) == y
    rows: list[list[Any]] = [
        ["direct 48x48 (training framing)", "-", "-", 100 * direct[found].mean()],
        [
            "plugin path, the face's own square",
            "-",
            "-",
            100
            * (
                classify_crops(
                    classifier, [square_crop(f, t, 0.0) for f, t, ok in zip(frames, truths, found) if ok]
                )
                == y[found]
            ).mean(),
        ],
    ]
    results: dict[str, Any] = {
        "n": len(y),
        "detected": int(found.sum()),
        "direct": float(direct[found].mean()),
    }
    kept = [(f, b["bbox"]) for f, b, ok in zip(frames, boxes, found) if ok]
    settings = [(m, o, "MTCNN box") for m in MARGINS for o in OFFSETS]
    if fitted is not None:
        settings.append((*fitted, "MTCNN box, framing fitted on training faces"))
    for margin, offset, what in settings:
        pred = classify_crops(classifier, [square_crop(f, shifted(b, offset), margin) for f, b in kept])
        top1 = float((pred == y[found]).mean())
        results[f"margin={margin},offset_y={offset}"] = top1
        rows.append([what, f"{margin:g}", f"{offset:g}", 100 * top1])
    if fitted is not None:
        for rotate in (False, True):
            crops = [
                landmark_crop(f, b, *by_landmarks, rotate) for f, b, ok in zip(frames, boxes, found) if ok
            ]
            top1 = float((classify_crops(classifier, crops) == y[found]).mean())
            name = f"landmarks{', eyes levelled' if rotate else ''}, fitted on training faces"
            results[name] = top1
            rows.append([name, f"side {by_landmarks[0]:g}", f"{by_landmarks[1]:g}", 100 * top1])
    best = max((k for k in results if k.startswith(("margin=", "landmarks"))), key=results.get)
    print_table(
        f"{args.checkpoint} ({meta.arch}) on FER-2013 test faces placed in frames ({args.scale}x): "
        f"{int(found.sum())} of {len(y)} detected ({100 * found.mean():.1f}%), top-1 (%) on those",
        ["crop", "margin", "offset_y", "top-1"],
        rows,
    )
    print(f"best crop: {best} ({100 * results[best]:.1f}% against {100 * results['direct']:.1f}% direct)")
    return results


if __name__ == "__main__":
    main()
