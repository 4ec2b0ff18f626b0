"""Generated EMOTIC-style data: images whose colours decide the labels, and a CSV in the
preprocessed format, so a few training steps can learn something and tests can check it."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from vidaffect.models.emotic_labels import CATEGORIES
from vidaffect_trainers.emotic.data import CSV_COLUMNS

SCENES = {0: ((60, 150, 60), ["Peace"]), 1: ((50, 50, 170), ["Disquietment", "Fear"])}  # BGR background
BODIES = {0: ((40, 210, 240), ["Happiness", "Pleasure"]), 1: ((200, 90, 30), ["Sadness"])}  # BGR body


def make_emotic_set(root: Path, name: str, n: int, seed: int, size: tuple[int, int] = (96, 80)) -> Path:
    """``n`` images (one person each) under ``root/images/<name>/`` and ``root/<name>.csv``.

    The background colour (green or red) sets Peace or Disquietment + Fear and the arousal
    (3 or 8); the body colour (yellow or blue) sets Happiness + Pleasure or Sadness and the
    valence (8 or 3). Every person has Engagement. Returns the CSV path.
    """
    rng = np.random.default_rng(seed)
    folder = root / "images" / name
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    rows = []
    for i in range(n):
        scene, body = int(rng.integers(2)), int(rng.integers(2))
        img = np.empty((h, w, 3), np.uint8)
        img[:] = SCENES[scene][0]
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        bw, bh = int(rng.integers(22, 40)), int(rng.integers(36, h - 6))
        x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        cv2.rectangle(img, (x1, y1), (x1 + bw - 1, y1 + bh - 1), BODIES[body][0], cv2.FILLED)
        file = f"{name}_{i:04d}.png"
        cv2.imwrite(str(folder / file), img)
        labels = {"Engagement", *SCENES[scene][1], *BODIES[body][1]}
        valence, arousal = (8.0 if body == 0 else 3.0), (3.0 if scene == 0 else 8.0)
        row = {
            "Filename": file,
            "Width": w,
            "Height": h,
            "Age": "Adult",
            "Gender": "Female",
            "Valence": valence,
            "Arousal": arousal,
            "Dominance": 5.0,
            "X_min": x1,
            "Y_min": y1,
            "X_max": x1 + bw,
            "Y_max": y1 + bh,
        }
        row.update({c: (1.0 if c in labels else 0.0) for c in CATEGORIES})
        rows.append(row)
    path = root / f"{name}.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path
