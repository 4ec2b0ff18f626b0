"""EMOTIC data: annotation loaders (preprocessed CSV, the authors' ``Annotations.mat``) and images.

EMOTIC: Kosti, Alvarez, Recasens, Lapedriza, "Context Based Emotion Recognition using EMOTIC
Dataset", IEEE TPAMI 2019. Each annotated person has a body box in an image, any number of the
26 discrete categories (multilabel) and valence, arousal and dominance on a 1-10 scale.

Two annotation forms are read, both into :class:`EmoticAnnotations` (one row per person):

* the preprocessed CSV of the Tandon-A/emotic PyTorch repository (``annot_arrs_{split}.csv``):
  ``Filename, Width, Height, Age, Gender, Valence, Arousal, Dominance``, 26 category columns
  (0.0/1.0, in that file's own order; mapped here by name), ``X_min, Y_min, X_max, Y_max``
  and optionally ``Arr_name`` / ``Crop_name``, the ``.npy`` arrays of the whole image and the
  body crop (RGB uint8, 224x224x3 and 128x128x3 there);
* the authors' ``Annotations.mat`` (variables ``train``, ``val``, ``test``).

Conventions everywhere: categories are multi-hot float32 ``(N, 26)`` in
:data:`vidaffect.models.emotic_labels.CATEGORIES` order; VAD is float32 ``(N, 3)`` in
valence, arousal, dominance order, 1-10; boxes are float32 ``(N, 4)`` ``[x1, y1, x2, y2]`` in
pixels of the original image, origin top-left, x right, y down, the box covering
``x1 <= x < x2``, ``y1 <= y < y2``; image sizes are ``[width, height]``. Images come out as
uint8 ``(H, W, 3)`` RGB.

The files are not cleaned: in the CSVs some rows' box only fits the image once Width and
Height are swapped, and a few boxes leave the image by some pixels. :func:`check_boxes`
reports them; :class:`EmoticImages` clips each box to the image it actually reads.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import scipy.io
from torch.utils.data import Dataset

from vidaffect.models.emotic_labels import CATEGORIES

SPLITS: tuple[str, ...] = ("train", "val", "test")
CSV_COLUMNS: tuple[str, ...] = (
    "Filename",
    "Width",
    "Height",
    "Age",
    "Gender",
    "Valence",
    "Arousal",
    "Dominance",
    *CATEGORIES,
    "X_min",
    "Y_min",
    "X_max",
    "Y_max",
)
_CATEGORY_INDEX = {name: k for k, name in enumerate(CATEGORIES)}


@dataclass
class EmoticAnnotations:
    """One row per annotated person.

    Attributes:
        filenames: image file names (``folder/filename`` when loaded from the ``.mat``).
        image_size: int64 ``(N, 2)`` ``[width, height]`` in pixels, as given in the file.
        boxes: float32 ``(N, 4)`` body box ``[x1, y1, x2, y2]`` in pixels.
        categories: float32 ``(N, 26)`` multi-hot, in ``CATEGORIES`` order.
        vad: float32 ``(N, 3)`` valence, arousal, dominance (1-10).
        age, gender: the file's labels (e.g. ``"Adult"``, ``"Female"``).
        context_arrays, body_arrays: ``Arr_name`` / ``Crop_name`` ``.npy`` names, ``None`` when
            the source has none.
        source: where the rows came from (last two path parts, e.g.
            ``"emotic/annot_arrs_val.csv"``; ``":split"`` appended for a ``.mat``).
    """

    filenames: list[str]
    image_size: np.ndarray
    boxes: np.ndarray
    categories: np.ndarray
    vad: np.ndarray
    age: list[str]
    gender: list[str]
    context_arrays: list[str] | None
    body_arrays: list[str] | None
    source: str

    def __len__(self) -> int:
        return len(self.filenames)

    def subset(self, index: np.ndarray) -> EmoticAnnotations:
        """The rows at ``index`` (integer indices or a boolean mask of length N), in that order."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)

        def pick(items: list[str] | None) -> list[str] | None:
            return None if items is None else [items[i] for i in index]

        return EmoticAnnotations(
            pick(self.filenames),
            self.image_size[index],
            self.boxes[index],
            self.categories[index],
            self.vad[index],
            pick(self.age),
            pick(self.gender),
            pick(self.context_arrays),
            pick(self.body_arrays),
            self.source,
        )


def _short(path: Path) -> str:
    return "/".join(path.resolve().parts[-2:])


def _number(where: str, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: column {column!r}: {text!r} is not a finite number")
    return value


def _annotations(
    filenames: list[str],
    sizes: list,
    boxes: list,
    cats: list,
    vads: list,
    age: list[str],
    gender: list[str],
    contexts: list[str] | None,
    bodies: list[str] | None,
    source: str,
) -> EmoticAnnotations:
    """Per-row lists gathered by a loader -> :class:`EmoticAnnotations` arrays."""
    return EmoticAnnotations(
        filenames=filenames,
        image_size=np.asarray(sizes, np.int64),
        boxes=np.asarray(boxes, np.float32),
        categories=np.stack(cats),
        vad=np.asarray(vads, np.float32),
        age=age,
        gender=gender,
        context_arrays=contexts,
        body_arrays=bodies,
        source=source,
    )


def load_csv(path: str | Path) -> EmoticAnnotations:
    """Load a preprocessed EMOTIC CSV (``annot_arrs_{split}.csv``); see the module docstring.

    Category columns are matched by name, whatever their order in the file. ``Arr_name`` and
    ``Crop_name`` are optional. Rows are kept as they are: nothing is clipped or swapped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, the line (the header is line 1) and the column: a missing
            column, a row with too few or too many fields, a value that is not a finite number,
            a width/height that is not a whole number, a category that is not 0 or 1; or a file
            with no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EMOTIC CSV not found: {path}")
    filenames, age, gender, contexts, bodies = [], [], [], [], []
    sizes, boxes, cats, vads = [], [], [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}:1: missing column(s) {missing}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:
                raise ValueError(f"{where}: {len(header) + len(row[None])} fields, header has {len(header)}")
            short = [c for c in header if row[c] is None]
            if short:
                raise ValueError(f"{where}: too few fields, no value for column {short[0]!r}")
            size = [_number(where, c, row[c]) for c in ("Width", "Height")]
            for c, v in zip(("Width", "Height"), size):
                if v != round(v):
                    raise ValueError(f"{where}: column {c!r}: {row[c]!r} is not a whole number")
            hot = np.zeros(len(CATEGORIES), np.float32)
            for name, k in _CATEGORY_INDEX.items():
                v = _number(where, name, row[name])
                if v not in (0.0, 1.0):
                    raise ValueError(f"{where}: column {name!r}: category must be 0 or 1, got {row[name]!r}")
                hot[k] = v
            vads.append([_number(where, c, row[c]) for c in ("Valence", "Arousal", "Dominance")])
            boxes.append([_number(where, c, row[c]) for c in ("X_min", "Y_min", "X_max", "Y_max")])
            sizes.append(size)
            cats.append(hot)
            filenames.append(row["Filename"])
            age.append(row["Age"])
            gender.append(row["Gender"])
            contexts.append(row.get("Arr_name"))
            bodies.append(row.get("Crop_name"))
    if not filenames:
        raise ValueError(f"{path}: no data rows")
    return _annotations(
        filenames,
        sizes,
        boxes,
        cats,
        vads,
        age,
        gender,
        contexts if "Arr_name" in header else None,
        bodies if "Crop_name" in header else None,
        _short(path),
    )


def _items(x: object) -> list:
    """A MATLAB struct/cell array as a list; ``squeeze_me`` turns a 1-element one into a scalar."""
    return list(x.ravel()) if isinstance(x, np.ndarray) else [x]


def _names(x: object) -> list[str]:
    """Category names from a string, a cell array of strings or an empty array."""
    return [x] if isinstance(x, str) else [str(s) for s in _items(x)]


def _single(x: object, what: str) -> object:
    items = _items(x)
    if len(items) != 1:
        raise ValueError(f"expected one {what}, found {len(items)}")
    return items[0]


def load_mat(path: str | Path, split: str) -> EmoticAnnotations:
    """Load one split of the authors' ``Annotations.mat``.

    Each image record has ``filename``, ``folder``, ``image_size`` (``n_col`` = width,
    ``n_row`` = height) and ``person`` (one struct or an array), each person ``body_bbox``
    ``[x1, y1, x2, y2]``, ``gender``, ``age`` and annotations. For ``train`` the person's single
    ``annotations_categories.categories`` / ``annotations_continuous`` are used; for ``val`` and
    ``test`` the ``combined_categories`` (union over annotators) and ``combined_continuous``
    (mean). File names come out as ``folder/filename``. There are no ``.npy`` array names.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown split, the split missing from the file, or a record without a
            needed field, with a bad box or an unknown category name (naming the image and
            person).
    """
    path = Path(path)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not path.is_file():
        raise FileNotFoundError(f"EMOTIC annotations not found: {path}")
    mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    if split not in mat:
        raise ValueError(
            f"{path}: no variable {split!r} (has {sorted(k for k in mat if not k.startswith('__'))})"
        )
    filenames, age, gender, sizes, boxes, cats, vads = [], [], [], [], [], [], []
    for i, image in enumerate(_items(mat[split])):
        name = f"{getattr(image, 'folder', '?')}/{getattr(image, 'filename', '?')}"
        for j, person in enumerate(_items(getattr(image, "person", []))):
            try:
                if split == "train":
                    names = _names(_single(person.annotations_categories, "categories annotation").categories)
                    cont = _single(person.annotations_continuous, "continuous annotation")
                else:
                    names = _names(person.combined_categories)
                    cont = _single(person.combined_continuous, "combined continuous annotation")
                unknown = [n for n in names if n not in _CATEGORY_INDEX]
                if unknown:
                    raise ValueError(f"unknown categories {unknown}")
                box = np.asarray(person.body_bbox, np.float64).ravel()
                if box.size != 4:
                    raise ValueError(f"body_bbox has {box.size} values, expected 4")
                hot = np.zeros(len(CATEGORIES), np.float32)
                hot[[_CATEGORY_INDEX[n] for n in names]] = 1.0
                vad = [float(cont.valence), float(cont.arousal), float(cont.dominance)]
                if not (np.isfinite(box).all() and np.isfinite(vad).all()):
                    raise ValueError(f"body_bbox {box.tolist()} or VAD {vad} is not finite")
                size = [int(image.image_size.n_col), int(image.image_size.n_row)]
                sex, years = str(person.gender), str(person.age)
            except (AttributeError, TypeError, ValueError) as e:
                raise ValueError(f"{path}: {split} image {i} ({name}) person {j}: {e}") from None
            filenames.append(name)
            sizes.append(size)
            boxes.append(box)
            cats.append(hot)
            vads.append(vad)
            gender.append(sex)
            age.append(years)
    if not filenames:
        raise ValueError(f"{path}: split {split!r} has no persons")
    return _annotations(
        filenames, sizes, boxes, cats, vads, age, gender, None, None, f"{_short(path)}:{split}"
    )


def load_annotations(path: str | Path, split: str | None = None) -> EmoticAnnotations:
    """Load a ``.csv`` (:func:`load_csv`; ``split`` is ignored, the file is one split) or a
    ``.mat`` (:func:`load_mat`; ``split`` required).

    Raises:
        ValueError: another suffix, or a ``.mat`` without ``split``; and the loaders' errors.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(path)
    if suffix == ".mat":
        if split is None:
            raise ValueError(
                f"{path}: a .mat file holds several splits; choose one with --split ({', '.join(SPLITS)})"
            )
        return load_mat(path, split)
    raise ValueError(f"{path}: expected a .csv or .mat EMOTIC annotation file")


@dataclass
class BoxCheck:
    """How the body boxes sit in their images' stated ``[width, height]``.

    Every row is exactly one of ``inside`` (``0 <= x1``, ``0 <= y1``, ``x2 <= width``,
    ``y2 <= height``), ``inside_if_swapped`` (not inside, but inside once width and height are
    swapped) or ``outside`` (neither), so the three add up to ``n``. ``degenerate`` counts boxes
    with ``x2 <= x1`` or ``y2 <= y1``, whichever group they are in.

    Attributes:
        swapped_rows, outside_rows: int64 row indices (0-based, into the annotations).
        max_overshoot: pixels by which the worst ``outside`` box leaves its image, taking the
            better of the two orientations (0.0 when none is outside).
    """

    n: int
    inside: int
    inside_if_swapped: int
    outside: int
    swapped_rows: np.ndarray
    outside_rows: np.ndarray
    degenerate: int
    max_overshoot: float

    def summary(self) -> dict[str, int | float]:
        """The counts (and ``max_overshoot``) as a plain dict, for reports and JSON."""
        return {
            "n": self.n,
            "inside": self.inside,
            "inside_if_swapped": self.inside_if_swapped,
            "outside": self.outside,
            "degenerate": self.degenerate,
            "max_overshoot": self.max_overshoot,
        }


def check_boxes(ann: EmoticAnnotations) -> BoxCheck:
    """Check every body box against its image size; see :class:`BoxCheck`. Changes nothing."""
    b = ann.boxes.astype(np.float64)
    w, h = (ann.image_size[:, k].astype(np.float64) for k in (0, 1))

    def overshoot(width: np.ndarray, height: np.ndarray) -> np.ndarray:
        return np.maximum.reduce([-b[:, 0], -b[:, 1], b[:, 2] - width, b[:, 3] - height, np.zeros(len(b))])

    as_given, as_swapped = overshoot(w, h), overshoot(h, w)
    inside = as_given == 0
    swapped = ~inside & (as_swapped == 0)
    outside = ~inside & ~swapped
    worst = np.minimum(as_given, as_swapped)[outside]
    return BoxCheck(
        n=len(b),
        inside=int(inside.sum()),
        inside_if_swapped=int(swapped.sum()),
        outside=int(outside.sum()),
        swapped_rows=np.flatnonzero(swapped).astype(np.int64),
        outside_rows=np.flatnonzero(outside).astype(np.int64),
        degenerate=int(((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).sum()),
        max_overshoot=float(worst.max()) if worst.size else 0.0,
    )


def category_counts(ann: EmoticAnnotations) -> np.ndarray:
    """int64 ``(26,)``: persons carrying each category, in ``CATEGORIES`` order."""
    return ann.categories.sum(axis=0).round().astype(np.int64)


def _find_images(root: Path, names: list[str]) -> list[Path]:
    """One path per name: walk ``root`` once and index the files by base name.

    A name with folders (``folder/filename``) picks among same-named files the one whose path
    ends with it.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"images folder not found: {root}")
    wanted = {PurePosixPath(n).name for n in names}
    found: dict[str, list[Path]] = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f in wanted:
                found.setdefault(f, []).append(Path(dirpath) / f)
    paths, missing = [], []
    for name in names:
        candidates = sorted(found.get(PurePosixPath(name).name, []))
        if len(candidates) > 1:
            candidates = [p for p in candidates if p.as_posix().endswith("/" + name)] or candidates
        if not candidates:
            missing.append(name)
        elif len(candidates) > 1:
            raise ValueError(f"image {name!r} is ambiguous under {root}: {[str(p) for p in candidates]}")
        else:
            paths.append(candidates[0])
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) not found under {root}, e.g. {missing[0]!r}")
    return paths


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _load_rgb_array(path: Path) -> np.ndarray:
    a = np.load(path)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{path}: expected a uint8 (H, W, 3) RGB array, got {a.dtype} {a.shape}")
    return a


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if img.shape[:2] == (h, w):
        return np.ascontiguousarray(img)
    shrink = h <= img.shape[0] and w <= img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _size(size: tuple[int, int], what: str) -> tuple[int, int]:
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{what} must be (height, width) > 0, got {size}")
    return int(size[0]), int(size[1])


class EmoticImages(Dataset):
    """``(body, context, categories, vad)`` per annotated person, as numpy arrays.

    From image files (``images_root``): the folder is walked once and every file name indexed
    by its base name; the body is the box crop, clipped to the image actually read (so a
    swapped Width/Height in the annotations does not matter), the context the whole image.
    From the preprocessed arrays (``arrays_root``): the ``Arr_name`` (context) and
    ``Crop_name`` (body) ``.npy`` files in that folder, RGB uint8 ``(H, W, 3)``.

    Both are resized to ``body_size`` / ``context_size`` ``(height, width)`` with cv2,
    ``INTER_AREA`` when shrinking, bilinear otherwise.

    Items: body uint8 ``(Hb, Wb, 3)`` RGB, context uint8 ``(Hc, Wc, 3)`` RGB, categories
    float32 ``(26,)`` in ``CATEGORIES`` order, vad float32 ``(3,)`` (1-10).

    Raises (at construction):
        ValueError: not exactly one of ``images_root`` / ``arrays_root``; ``arrays_root``
            with annotations that name no arrays; a file name found in two folders; bad sizes.
        FileNotFoundError: a root or a needed file is missing (naming it).
    Raises (per item): ValueError for an undecodable image or array, or a box with no pixels
    inside its image.
    """

    def __init__(
        self,
        ann: EmoticAnnotations,
        images_root: str | Path | None = None,
        arrays_root: str | Path | None = None,
        body_size: tuple[int, int] = (128, 128),
        context_size: tuple[int, int] = (224, 224),
    ) -> None:
        if (images_root is None) == (arrays_root is None):
            raise ValueError("give exactly one of images_root (image files) or arrays_root (.npy arrays)")
        self.ann = ann
        self.body_size = _size(body_size, "body_size")
        self.context_size = _size(context_size, "context_size")
        self.images: list[Path] | None = None
        self.arrays: list[tuple[Path, Path]] | None = None
        if images_root is not None:
            self.images = _find_images(Path(images_root), ann.filenames)
            return
        root = Path(arrays_root)
        if ann.context_arrays is None or ann.body_arrays is None:
            raise ValueError(f"{ann.source} names no Arr_name/Crop_name arrays; use images_root")
        if not root.is_dir():
            raise FileNotFoundError(f"arrays folder not found: {root}")
        self.arrays = [(root / c, root / b) for c, b in zip(ann.context_arrays, ann.body_arrays)]
        missing = [p.name for pair in self.arrays for p in pair if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} array file(s) not found in {root}, e.g. {missing[0]!r}")

    def __len__(self) -> int:
        return len(self.ann)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.images is not None:
            context = _read_rgb(self.images[i])
            h, w = context.shape[:2]
            x1, y1, x2, y2 = self.ann.boxes[i].astype(np.float64)
            c1, r1 = math.floor(max(x1, 0.0)), math.floor(max(y1, 0.0))
            c2, r2 = math.ceil(min(x2, w)), math.ceil(min(y2, h))
            if c2 <= c1 or r2 <= r1:
                raise ValueError(
                    f"{self.ann.source} row {i}: box {[x1, y1, x2, y2]} has no pixels in "
                    f"{self.images[i]} ({w}x{h})"
                )
            body = context[r1:r2, c1:c2]
        else:
            context_path, body_path = self.arrays[i]
            context, body = _load_rgb_array(context_path), _load_rgb_array(body_path)
        return (
            _resize(body, self.body_size),
            _resize(context, self.context_size),
            self.ann.categories[i].copy(),
            self.ann.vad[i].copy(),
        )
