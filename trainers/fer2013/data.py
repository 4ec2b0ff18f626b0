"""FER-2013 data: the Kaggle folder layout, the original ``fer2013.csv``, any class-named folder.

FER-2013: Goodfellow et al., "Challenges in Representation Learning: A report on three machine
learning contests", ICML 2013 workshop. 48x48 grayscale faces, 7 classes.

All loaders return ``(images, labels, label_names)``: ``images`` uint8 ``(N, H, W)`` grayscale,
``labels`` int64 ``(N,)`` indices into ``label_names``. For FER-2013 the class order is the
CSV's: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral, whichever form the
data comes in.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CSV_USAGE = {"train": ("Training",), "test": ("PublicTest",), "private": ("PrivateTest",)}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


@dataclass
class FaceSet:
    """Grayscale face images with integer labels.

    Attributes:
        images: uint8 ``(N, H, W)``.
        labels: int64 ``(N,)``, indices into ``label_names``.
        label_names: class names in index order.
        source: where the data came from (for checkpoint metadata and reports).
    """

    images: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> FaceSet:
        return FaceSet(self.images[index], self.labels[index], self.label_names, self.source)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.label_names))


def _cache_dir() -> Path:
    return Path(os.environ.get("VIDAFFECT_CACHE", Path.home() / ".cache" / "vidaffect")) / "data"


def label_order(class_names: list[str]) -> tuple[str, ...]:
    """FER-2013's order when every name is a FER-2013 class, else the names sorted."""
    lowered = [c.lower() for c in class_names]
    if set(lowered) <= set(FER_LABELS):
        return FER_LABELS
    return tuple(sorted(class_names))


def load_folder(root: str | Path, size: int = 48, cache: bool = True) -> FaceSet:
    """Load a folder of class-named subfolders of images (``root/<class>/*.jpg``).

    Images are read as grayscale and resized to ``size`` x ``size`` when they differ.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no class folders with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files: list[tuple[Path, str]] = []
    for c in classes:
        files += [(p, c) for p in sorted((root / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"no images in class subfolders of {root}")
    names = label_order(sorted({c for _, c in files}))
    index = {n.lower(): i for i, n in enumerate(names)}

    # The key covers every (class, file name): moving a file to another class keeps the count
    # and the newest mtime, and must not serve stale labels.
    listing = "\n".join(f"{c}/{p.name}" for p, c in files)
    newest = max(p.stat().st_mtime for p, _ in files)
    key = hashlib.sha1(f"{root.resolve()}|{size}|{newest}|{listing}".encode()).hexdigest()[:16]
    cache_file = _cache_dir() / f"folder-{key}.npz"
    if cache and cache_file.is_file():
        z = np.load(cache_file)
        return FaceSet(z["images"], z["labels"], names, str(root))

    images = np.empty((len(files), size, size), np.uint8)
    labels = np.empty(len(files), np.int64)
    for i, (p, c) in enumerate(files):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ValueError(f"cannot decode image {p}")
        if img.shape != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        images[i] = img
        labels[i] = index[c.lower()]
    if cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        tmp.replace(cache_file)
    return FaceSet(images, labels, names, str(root))


def load_csv(path: str | Path, usage: tuple[str, ...] | str | None = None) -> FaceSet:
    """Load the original ``fer2013.csv`` (columns ``emotion``, ``pixels``, ``Usage``).

    Args:
        usage: keep rows whose Usage is one of these (``"Training"``, ``"PublicTest"``,
            ``"PrivateTest"``); ``None`` keeps all rows.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a required column is missing or a row's pixels don't form a square image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV not found: {path}")
    if isinstance(usage, str):
        usage = (usage,)
    images, labels = [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for n, row in enumerate(reader, start=2):
            if usage is not None and row.get("Usage") not in usage:
                continue
            px = np.array(row["pixels"].split(), dtype=np.uint8)
            side = int(round(len(px) ** 0.5))
            if side * side != len(px) or side == 0:
                raise ValueError(f"{path}:{n}: {len(px)} pixels is not a square image")
            images.append(px.reshape(side, side))
            labels.append(int(row["emotion"]))
    if not images:
        raise ValueError(f"{path}: no rows with Usage in {usage}")
    labels_arr = np.asarray(labels, np.int64)
    if labels_arr.min() < 0 or labels_arr.max() >= len(FER_LABELS):
        raise ValueError(f"{path}: emotion labels must be 0..{len(FER_LABELS) - 1}")
    return FaceSet(np.stack(images), labels_arr, FER_LABELS, f"{path}:{','.join(usage or ('all',))}")


def load(data: str | Path, split: str = "train") -> FaceSet:
    """Load ``split`` ("train" or "test") from a FER-2013 folder layout, a CSV, or a class folder.

    * ``DIR`` with ``train/`` and ``test/`` subfolders: the Kaggle layout; ``DIR/<split>`` is read.
    * ``FILE.csv``: fer2013.csv; train = Usage "Training", test = "PublicTest"
      (``split="private"`` reads "PrivateTest").
    * any other ``DIR``: a folder of class-named subfolders, read whole.
    * ``FILE.faces.xz``: faces packed by :mod:`vidaffect_trainers.fer2013.pack`.
    """
    data = Path(data)
    if data.name.endswith(".faces.xz"):
        from vidaffect_trainers.fer2013.pack import read_packed

        images, labels, names, source = read_packed(data, split)
        return FaceSet(images, labels.astype(np.int64), names, source)
    if data.suffix.lower() == ".csv":
        return load_csv(data, CSV_USAGE.get(split, (split,)))
    if (data / split).is_dir():
        return load_folder(data / split)
    if (data / "train").is_dir() or (data / "test").is_dir():
        raise FileNotFoundError(f"{data} has no {split}/ folder")
    return load_folder(data)


def stratified_split(labels: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: ``(keep_index, holdout_index)`` with ``frac`` of each class held out.

    Both are sorted int64 index arrays into ``labels``; a class of 2+ samples holds out at least
    one when ``frac > 0``.

    Raises:
        ValueError: ``frac`` is outside [0, 1].
    """
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1], got {frac}")
    rng = np.random.default_rng(seed)
    keep, hold = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_hold = int(round(len(idx) * frac))
        if frac > 0 and len(idx) > 1:
            n_hold = max(1, n_hold)
        hold.append(idx[:n_hold])
        keep.append(idx[n_hold:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(hold))
