"""Ground-truth statistics of EMOTIC annotation files, no images needed.

For each file: persons and images, category frequencies, labels per person, VAD mean and
range, the boxes that do not fit the stated image size (and those that fit once width and
height are swapped), the 26x26 co-occurrence ``P(column | row)`` as CSV and PNG, and the mAP
of the label-prior predictor (every person scored with the categories' frequencies; tied
scores make each AP the category's prevalence in the evaluated file, whichever file the
prior comes from). That mAP is the floor a model must beat.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from vidaffect.models.emotic_labels import CATEGORIES, VAD
from vidaffect_trainers import multilabel
from vidaffect_trainers.emotic.data import EmoticAnnotations, category_counts, check_boxes, load_annotations
from vidaffect_trainers.emotic.evaluate import write_cooccurrence


def statistics(
    ann: EmoticAnnotations, prior_from: EmoticAnnotations | None = None, min_pairs: int = 20
) -> dict[str, Any]:
    """The JSON-able statistics of one annotation set (see the module docstring).

    Args:
        prior_from: annotations whose category frequencies make the prior predictor
            (default: ``ann`` itself).
        min_pairs: pairs of categories seen together fewer times are left out of
            ``top_lift`` (the pairs most above chance: ``P(a and b) / (P(a) P(b))``).
    """
    y = ann.categories
    counts = category_counts(ann)
    per_person = y.sum(axis=1)
    ref = (prior_from or ann).categories
    prior_ap = multilabel.per_category_ap(y, multilabel.prior_scores(ref, len(y)))
    boxes = check_boxes(ann)
    counts_2d = multilabel.cooccurrence(y)
    cond = multilabel.conditional_cooccurrence(counts_2d)
    lift = cond / np.maximum(y.mean(axis=0), 1e-9)[None, :]  # P(j | i) / P(j)
    np.fill_diagonal(lift, 0)
    lift[counts_2d < min_pairs] = 0
    upper = np.triu(lift)  # lift is symmetric
    i, j = np.unravel_index(np.argsort(-upper, axis=None)[:8], upper.shape)
    return {
        "data": ann.source,
        "persons": len(ann),
        "images": len(set(ann.filenames)),
        "category_counts": {c: int(n) for c, n in zip(CATEGORIES, counts)},
        "category_frequency": {c: round(float(n) / len(ann), 4) for c, n in zip(CATEGORIES, counts)},
        "labels_per_person": {
            "mean": round(float(per_person.mean()), 3),
            "min": int(per_person.min()),
            "max": int(per_person.max()),
        },
        "vad_mean": {k: round(float(v), 3) for k, v in zip(VAD, ann.vad.mean(axis=0))},
        "vad_min": {k: float(v) for k, v in zip(VAD, ann.vad.min(axis=0))},
        "vad_max": {k: float(v) for k, v in zip(VAD, ann.vad.max(axis=0))},
        "boxes": boxes.summary(),
        "prior_from": (prior_from or ann).source,
        "prior_mAP": round(multilabel.mean_ap(prior_ap), 4),
        "top_lift": [
            f"{CATEGORIES[a]} + {CATEGORIES[b]}: lift {lift[a, b]:.1f} ({counts_2d[a, b]} persons)"
            for a, b in zip(i, j)
            if lift[a, b] > 0
        ],
    }


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run ``stats``: one JSON line per file, CSV/PNG co-occurrence in ``--report``."""
    sets = [load_annotations(path, args.split) for path in args.annotations]
    prior = load_annotations(args.prior_from, args.split) if args.prior_from else None
    out = Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path, ann in zip(args.annotations, sets):
        stats = statistics(ann, prior)
        name = Path(path).stem
        write_cooccurrence(ann.categories, out, f"cooccurrence_{name}", f"{ann.source}: P(column | row)")
        (out / f"stats_{name}.json").write_text(json.dumps(stats, indent=1))
        print(json.dumps(stats), flush=True)
        results.append(stats)
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("annotations", nargs="+", help="annotation files (CSV, or Annotations.mat with --split)")
    p.add_argument("--split", default=None, help="split of an Annotations.mat (train, val, test)")
    p.add_argument(
        "--prior-from",
        default=None,
        help="annotations whose label frequencies form the prior predictor (default: each file's own)",
    )
    p.add_argument(
        "--report",
        default="out/emotic-stats",
        help="folder for the co-occurrence CSV/PNG files (default: out/emotic-stats)",
    )
