"""FER models under camera corruptions: top-1 per corruption and severity, side by side.

    python -m benchmarks.robustness [--checkpoint default --checkpoint alexnet ...]
                                    [--data DIR] [--limit N] [--json FILE]

FER-2013 test (PublicTest, 3,589 faces) clean and under each family of
:mod:`vidaffect_trainers.fer2013.corrupt` at severities 1-3 (ten families: darkening, low
contrast, blur, a small face, JPEG, sensor noise, in-plane rotation, a turned head, tracked-box
jitter, occlusion), as in ImageNet-C (Hendrycks & Dietterich, ICLR 2019). Printed, for every
checkpoint in one run: top-1 per corruption and severity, the mean corruption accuracy (mCA,
the mean of the 30), the clean top-1, and per-class recall clean and averaged over the
corruptions. Same seed, same corrupted faces for every checkpoint.

The faces also go the way a pipeline sends them (:mod:`benchmarks.pipeline_crop`): enlarged
3x in a frame, found by the real MTCNN plugin, cropped by the ``fer`` plugin around the box at
each ``--margin`` (repeat; default the plugin's 0 and 0.1); the table adds top-1 on the faces
MTCNN found, directly at 48x48 and through that path, and the points lost between the two.
All the faces by default (MTCNN finds about 2,970 of the 3,589, in about 2 minutes):
``--pipeline N`` takes N of them (stratified), ``--pipeline 0`` none. On 600 faces the
loss moves by 2-3 points from one sample to another; on all of them the standard error of a
loss is 0.6-0.8 points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import print_table
from vidaffect.models.checkpoint import load_checkpoint
from vidaffect_trainers import metrics
from vidaffect_trainers.fer2013.corrupt import FAMILIES, corrupt
from vidaffect_trainers.fer2013.data import FaceSet, load
from vidaffect_trainers.fer2013.evaluate import default_data, map_labels
from vidaffect_trainers.fer2013.predict import predict_images
from vidaffect_trainers.profiling import resolve

CONDITIONS: list[tuple[str, int]] = [("clean", 0)] + [(f, s) for f in FAMILIES for s in (1, 2, 3)]


def stratified_limit(faces: FaceSet, limit: int, seed: int = 0) -> FaceSet:
    """At most ``limit`` faces, the same share of each class (for quick runs)."""
    if not limit or limit >= len(faces):
        return faces
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(faces.label_names)):
        idx = np.flatnonzero(faces.labels == c)
        keep.append(rng.permutation(idx)[: int(round(limit * len(idx) / len(faces)))])
    return faces.subset(np.sort(np.concatenate(keep)))


def recall_per_class(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """Recall float ``(n,)`` per class (NaN for a class absent from ``y_true``)."""
    _, recall, _, support = metrics.precision_recall_f1(metrics.confusion_matrix(y_true, y_pred, n))
    return np.where(support > 0, recall, np.nan)


class PipelineFaces:
    """Faces placed in frames and found by MTCNN once, for every checkpoint's pipeline row."""

    def __init__(self, faces: FaceSet, n: int, seed: int, margins: list[float]) -> None:
        from benchmarks.pipeline_crop import detect
        from vidaffect_plugins.detectors.mtcnn import MTCNNDetector

        self.faces, self.margins = stratified_limit(faces, n, seed), margins
        detector = MTCNNDetector(MTCNNDetector.Config())
        detector.open()
        frames, _, boxes = detect(detector, self.faces.images, 3)
        self.found = np.array([b is not None for b in boxes])
        self.kept = [(f, b["bbox"]) for f, b in zip(frames, boxes) if b is not None]

    def top1(self, target: str) -> dict[str, Any]:
        """Direct top-1 of ``target`` on the detected faces, and through the pipeline's crop at
        each margin (``by_margin``: ``margin``, ``pipeline`` top-1, ``recall_pipeline``)."""
        from vidaffect_plugins.classifiers.crops import square_crop
        from vidaffect_plugins.classifiers.fer import FERClassifier

        classifier = FERClassifier(FERClassifier.Config(checkpoint=target))
        classifier.open()
        y = map_labels(self.faces, classifier.meta.labels)[self.found]
        direct = predict_images(classifier.model, classifier.meta, self.faces.images[self.found]).argmax(1)
        by_margin = []
        for margin in self.margins:
            path = classifier.predict([square_crop(f, b, margin) for f, b in self.kept]).argmax(1)
            by_margin.append(
                {
                    "margin": margin,
                    "pipeline": float((path == y).mean()),
                    "recall_pipeline": recall_per_class(y, path, len(classifier.meta.labels)).tolist(),
                }
            )
        return {
            "faces": len(self.faces),
            "detected": int(self.found.sum()),
            "direct": float((direct == y).mean()),
            "by_margin": by_margin,
        }


def evaluate(
    target: str,
    faces: FaceSet,
    images: dict[tuple[str, int], np.ndarray],
    pipeline: PipelineFaces | None = None,
) -> dict[str, Any]:
    """Top-1 and per-class recall of one checkpoint under every condition (and through the
    pipeline's crop when ``pipeline`` is given)."""
    name, ckpt = resolve(target)
    model, meta = load_checkpoint(ckpt)
    y_true = map_labels(faces, meta.labels)
    out: dict[str, Any] = {
        "name": name,
        "checkpoint": str(ckpt),
        "labels": list(meta.labels),
        "top1": {},
        "recall": {},
    }
    for cond, imgs in images.items():
        pred = predict_images(model, meta, imgs).argmax(1)
        key = cond[0] if cond[1] == 0 else f"{cond[0]}-{cond[1]}"
        out["top1"][key] = float((pred == y_true).mean())
        out["recall"][key] = recall_per_class(y_true, pred, len(meta.labels)).tolist()
    corrupted = [k for k in out["top1"] if k != "clean"]
    out["mca"] = float(np.mean([out["top1"][k] for k in corrupted]))
    out["recall_corrupted"] = np.nanmean([out["recall"][k] for k in corrupted], axis=0).tolist()
    if pipeline is not None:
        out["pipeline"] = pipeline.top1(str(ckpt))
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="shipped name, run folder or .safetensors (repeat; default: the shipped models)",
    )
    ap.add_argument("--data", default=None, help="FER-2013 folder or CSV (default: $VIDAFFECT_DATA/fer2013)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=0, help="at most N test faces, stratified (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument(
        "--pipeline",
        type=int,
        default=-1,
        metavar="N",
        help="classify N of the faces through MTCNN and the plugin's crop (default: all; 0: off)",
    )
    ap.add_argument(
        "--margin",
        type=float,
        action="append",
        default=None,
        help="a crop margin of the pipeline rows (repeat; default: the plugin's, 0 and 0.1, each once)",
    )
    args = ap.parse_args(argv)
    targets = args.checkpoint or ["default", "alexnet"]
    faces = stratified_limit(load(args.data or default_data(), args.split), args.limit, args.seed)
    images = {
        (f, s): faces.images if s == 0 else corrupt(faces.images, f, s, args.seed) for f, s in CONDITIONS
    }
    pipeline = None
    if args.pipeline:
        from vidaffect_plugins.classifiers.fer import FERClassifier

        margins = args.margin or list(dict.fromkeys([FERClassifier.Config().margin, 0.0, 0.1]))
        pipeline = PipelineFaces(faces, max(args.pipeline, 0), args.seed, margins)
    results = [evaluate(t, faces, images, pipeline) for t in targets]
    names = [r["name"] for r in results]
    rows = [["clean", "-", *(100 * r["top1"]["clean"] for r in results)]]
    for f, s in CONDITIONS[1:]:
        rows.append([f, s, *(100 * r["top1"][f"{f}-{s}"] for r in results)])
    for f in FAMILIES:
        rows.append(
            [f, "mean", *(100 * np.mean([r["top1"][f"{f}-{s}"] for s in (1, 2, 3)]) for r in results)]
        )
    rows.append(["mCA (mean of the 30)", "-", *(100 * r["mca"] for r in results)])
    if pipeline is not None:
        p = results[0]["pipeline"]
        what = f"{p['detected']} of {p['faces']} faces MTCNN found"
        rows.append([f"direct, {what}", "-", *(100 * r["pipeline"]["direct"] for r in results)])
        for i, m in enumerate(pipeline.margins):
            rows.append(
                [
                    f"pipeline crop, margin {m:g}",
                    "-",
                    *(100 * r["pipeline"]["by_margin"][i]["pipeline"] for r in results),
                ]
            )
            rows.append(
                [
                    f"pipeline loss (points), margin {m:g}",
                    "-",
                    *(
                        100 * (r["pipeline"]["direct"] - r["pipeline"]["by_margin"][i]["pipeline"])
                        for r in results
                    ),
                ]
            )
    print_table(
        f"FER-2013 {args.split} top-1 (%) under corruptions, {len(faces)} faces",
        ["corruption", "severity", *names],
        rows,
    )
    labels = results[0]["labels"]
    rec_rows = []
    for r in results:
        rec_rows.append([r["name"], "clean", *(100 * v for v in r["recall"]["clean"])])
        rec_rows.append([r["name"], "corrupted (mean)", *(100 * v for v in r["recall_corrupted"])])
        if "pipeline" in r:
            for p in r["pipeline"]["by_margin"]:
                rec_rows.append(
                    [
                        r["name"],
                        f"pipeline crop, margin {p['margin']:g}",
                        *(100 * v for v in p["recall_pipeline"]),
                    ]
                )
    print_table("per-class recall (%)", ["checkpoint", "faces", *labels], rec_rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
