"""Tests of the EMOTIC data module: CSV and .mat loaders, box checks, the image dataset.

Synthetic CSVs, ``.mat`` files, images and ``.npy`` arrays are written into ``tmp_path``; the
tests over ``REAL`` read the real annotation CSVs from the shared data folder (skipped without it).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from conftest import DATA

from vidaffect.models.emotic_labels import CATEGORIES
from vidaffect_trainers.emotic.data import (
    EmoticAnnotations,
    EmoticImages,
    category_counts,
    check_boxes,
    load_annotations,
    load_csv,
    load_mat,
)

EMOTIC = DATA / "emotic"


def _needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not (EMOTIC / name).is_file(),
        reason=f"needs the EMOTIC annotation CSVs in the shared data folder ({EMOTIC}/{name}; set VIDAFFECT_DATA)",
    )


# (file, persons) for the real annotation CSVs, each skipped when its file is absent.
REAL = [
    pytest.param("annot_arrs_val.csv", 2397, id="val", marks=_needs("annot_arrs_val.csv")),
    pytest.param("annot_arrs_test.csv", 7279, id="test", marks=_needs("annot_arrs_test.csv")),
]

# The category columns in the order of the Tandon-A/emotic CSVs (not CATEGORIES' order).
CSV_CATEGORIES = (
    "Peace",
    "Affection",
    "Esteem",
    "Anticipation",
    "Engagement",
    "Confidence",
    "Happiness",
    "Pleasure",
    "Excitement",
    "Surprise",
    "Sympathy",
    "Doubt/Confusion",
    "Disconnection",
    "Fatigue",
    "Embarrassment",
    "Yearning",
    "Disapproval",
    "Aversion",
    "Annoyance",
    "Anger",
    "Sensitivity",
    "Sadness",
    "Disquietment",
    "Fear",
    "Pain",
    "Suffering",
)
HEADER = [
    "Filename",
    "Width",
    "Height",
    "Age",
    "Gender",
    "Valence",
    "Arousal",
    "Dominance",
    *CSV_CATEGORIES,
    "X_min",
    "Y_min",
    "X_max",
    "Y_max",
    "Arr_name",
    "Crop_name",
]


def csv_row(
    filename: str = "scene.png",
    size: tuple[float, float] = (80, 60),
    box: tuple[float, float, float, float] = (10, 5, 50, 40),
    cats: tuple[str, ...] = ("Anger",),
    vad: tuple[float, float, float] = (5, 6, 7),
    arrays: tuple[str, str] = ("ctx.npy", "body.npy"),
) -> list[str]:
    """One data row in ``HEADER`` order, numbers formatted as in the real files (``317.0``)."""
    hot = [f"{float(c in cats):.1f}" for c in CSV_CATEGORIES]
    return [
        filename,
        *(f"{float(v):.1f}" for v in size),
        "Adult",
        "Female",
        *(f"{float(v):.1f}" for v in vad),
        *hot,
        *(f"{float(v):.1f}" for v in box),
        *arrays,
    ]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def names_of(hot: np.ndarray) -> set[str]:
    return {CATEGORIES[k] for k in np.flatnonzero(hot)}


# --- CSV loader ----------------------------------------------------------------------------------


def test_load_csv_maps_categories_by_name(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "emotic" / "annot.csv",
        [
            csv_row(cats=("Peace", "Suffering", "Doubt/Confusion"), vad=(3.4, 6, 5.8)),
            csv_row(filename="b.jpg", size=(317, 380), box=(146, 76, 379, 317), cats=("Affection",)),
        ],
    )
    ann = load_csv(path)
    assert len(ann) == 2
    assert names_of(ann.categories[0]) == {"Peace", "Suffering", "Doubt/Confusion"}
    assert names_of(ann.categories[1]) == {"Affection"}
    assert ann.categories.dtype == np.float32 and ann.categories.shape == (2, 26)
    assert ann.vad.dtype == np.float32 and ann.vad[0].tolist() == pytest.approx([3.4, 6, 5.8])
    assert ann.boxes.dtype == np.float32 and ann.boxes[1].tolist() == [146, 76, 379, 317]
    assert ann.image_size.dtype == np.int64 and ann.image_size.tolist() == [[80, 60], [317, 380]]
    assert ann.filenames == ["scene.png", "b.jpg"]
    assert ann.age == ["Adult", "Adult"] and ann.gender == ["Female", "Female"]
    assert ann.context_arrays == ["ctx.npy", "ctx.npy"] and ann.body_arrays == ["body.npy", "body.npy"]
    assert ann.source == "emotic/annot.csv"
    assert category_counts(ann).dtype == np.int64
    assert dict(zip(CATEGORIES, category_counts(ann).tolist())) == {
        c: int(c in {"Peace", "Suffering", "Doubt/Confusion", "Affection"}) for c in CATEGORIES
    }


def test_load_csv_without_array_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "annot.csv", [csv_row()[:-2]], header=HEADER[:-2])
    ann = load_csv(path)
    assert ann.context_arrays is None and ann.body_arrays is None


def _drop_column(name: str) -> Callable[[list[list[str]]], None]:
    def edit(table: list[list[str]]) -> None:
        k = table[0].index(name)
        for row in table:
            del row[k]

    return edit


def _set(line: int, column: str, value: str) -> Callable[[list[list[str]]], None]:
    def edit(table: list[list[str]]) -> None:
        table[line - 1][table[0].index(column)] = value

    return edit


def _truncate(line: int) -> Callable[[list[list[str]]], None]:
    def edit(table: list[list[str]]) -> None:
        del table[line - 1][-3:]

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop_column("Fear"), ":1: missing column(s) ['Fear']"),
        (_drop_column("X_max"), ":1: missing column(s) ['X_max']"),
        (_set(3, "Valence", "high"), ":3: column 'Valence': 'high' is not a number"),
        (_set(2, "Y_min", ""), ":2: column 'Y_min': '' is not a number"),
        (_set(3, "Arousal", "nan"), ":3: column 'Arousal': 'nan' is not a finite number"),
        (_set(2, "Anger", "2.0"), ":2: column 'Anger': category must be 0 or 1, got '2.0'"),
        (_set(3, "Peace", "0.5"), ":3: column 'Peace': category must be 0 or 1, got '0.5'"),
        (_set(2, "Width", "317.5"), ":2: column 'Width': '317.5' is not a whole number"),
        (_truncate(3), ":3: too few fields, no value for column 'Y_max'"),
    ],
    ids=[
        "missing-category",
        "missing-box",
        "bad-number",
        "empty",
        "nan",
        "category-2",
        "category-half",
        "fractional-width",
        "short-row",
    ],
)
def test_load_csv_rejects_bad_input(
    tmp_path: Path, edit: Callable[[list[list[str]]], None], message: str
) -> None:
    table = [list(HEADER), csv_row(), csv_row(filename="b.png")]
    edit(table)
    path = write_csv(tmp_path / "bad.csv", table[1:], header=table[0])
    with pytest.raises(ValueError) as err:
        load_csv(path)
    assert str(err.value) == f"{path}{message}"


def test_load_csv_rejects_header_only_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no data rows"):
        load_csv(write_csv(tmp_path / "empty.csv", []))
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_csv(tmp_path / "nowhere.csv")


def test_subset_and_dispatch(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "annot.csv", [csv_row(filename=f"{i}.png", vad=(i + 1, 5, 5)) for i in range(4)]
    )
    ann = load_annotations(path, split="val")
    part = ann.subset(np.array([3, 1]))
    assert part.filenames == ["3.png", "1.png"] and part.vad[:, 0].tolist() == [4, 2]
    assert part.context_arrays == ["ctx.npy", "ctx.npy"] and len(part.age) == 2
    masked = ann.subset(np.array([True, False, False, True]))
    assert masked.filenames == ["0.png", "3.png"] and masked.boxes.shape == (2, 4)
    with pytest.raises(ValueError, match="--split"):
        load_annotations(tmp_path / "Annotations.mat")
    with pytest.raises(ValueError, match=r"expected a \.csv or \.mat"):
        load_annotations(tmp_path / "annot.json")


# --- .mat loader ---------------------------------------------------------------------------------


def struct_array(records: list[dict]) -> np.ndarray:
    """A 1xN MATLAB struct array for ``scipy.io.savemat``."""
    out = np.empty((1, len(records)), dtype=[(k, object) for k in records[0]])
    for i, rec in enumerate(records):
        for k, v in rec.items():
            out[0, i][k] = v
    return out


def cells(*names: str) -> np.ndarray:
    return np.array(names, dtype=object)


def train_person(
    box: list[float], categories: object, vad: tuple[int, int, int], gender: str = "Male"
) -> dict:
    return {
        "body_bbox": np.array(box, float),
        "annotations_categories": {"categories": categories},
        "annotations_continuous": dict(zip(("valence", "arousal", "dominance"), vad)),
        "gender": gender,
        "age": "Adult",
    }


def val_person(
    box: list[float], per_annotator: list[tuple[str, ...]], vads: list[tuple[int, int, int]]
) -> dict:
    union = sorted(set().union(*per_annotator))
    mean = np.mean(vads, axis=0)
    return {
        "body_bbox": np.array(box, float),
        "annotations_categories": struct_array([{"categories": cells(*c)} for c in per_annotator]),
        "annotations_continuous": struct_array(
            [dict(zip(("valence", "arousal", "dominance"), v)) for v in vads]
        ),
        "combined_categories": cells(*union),
        "combined_continuous": dict(zip(("valence", "arousal", "dominance"), mean)),
        "gender": "Female",
        "age": "Kid",
    }


def image(filename: str, folder: str, width: int, height: int, person: object) -> dict:
    return {
        "filename": filename,
        "folder": folder,
        "image_size": {"n_col": width, "n_row": height},
        "original_database": {"name": folder.split("/")[0]},
        "person": person,
    }


@pytest.fixture
def annotations_mat(tmp_path: Path) -> Path:
    """Kosti's layout: a train split (two persons in one image, one in another) and a val split
    whose person has two annotators."""
    train = struct_array(
        [
            image(
                "COCO_1.jpg",
                "mscoco/images",
                640,
                480,
                struct_array(
                    [
                        train_person([10, 20, 110, 220], cells("Peace", "Happiness"), (7, 3, 6)),
                        train_person([300, 40, 420, 470], "Fear", (2, 8, 3), gender="Female"),
                    ]
                ),
            ),
            image(
                "frame_9.jpg",
                "framesdb/images",
                300,
                400,
                train_person([5, 6, 290, 390], "Doubt/Confusion", (5, 5, 5)),
            ),
        ]
    )
    val = struct_array(
        [
            image(
                "ade_7.jpg",
                "ade20k/images",
                256,
                256,
                val_person(
                    [1, 2, 200, 250],
                    [("Engagement", "Anticipation"), ("Engagement", "Fatigue")],
                    [(6, 4, 5), (8, 7, 6)],
                ),
            ),
        ]
    )
    path = tmp_path / "emotic" / "Annotations.mat"
    path.parent.mkdir()
    scipy.io.savemat(path, {"train": train, "val": val})
    return path


def test_load_mat_train(annotations_mat: Path) -> None:
    ann = load_annotations(annotations_mat, split="train")
    assert len(ann) == 3
    assert ann.filenames == [
        "mscoco/images/COCO_1.jpg",
        "mscoco/images/COCO_1.jpg",
        "framesdb/images/frame_9.jpg",
    ]
    assert [names_of(c) for c in ann.categories] == [{"Peace", "Happiness"}, {"Fear"}, {"Doubt/Confusion"}]
    assert ann.vad.tolist() == [[7, 3, 6], [2, 8, 3], [5, 5, 5]]
    assert ann.boxes.tolist() == [[10, 20, 110, 220], [300, 40, 420, 470], [5, 6, 290, 390]]
    assert ann.image_size.tolist() == [[640, 480], [640, 480], [300, 400]]
    assert ann.gender == ["Male", "Female", "Male"] and ann.age == ["Adult"] * 3
    assert ann.context_arrays is None and ann.body_arrays is None
    assert ann.source == "emotic/Annotations.mat:train"
    assert (
        ann.categories.dtype == np.float32 and ann.vad.dtype == np.float32 and ann.boxes.dtype == np.float32
    )


def test_load_mat_val_uses_combined_annotations(annotations_mat: Path) -> None:
    ann = load_mat(annotations_mat, "val")
    assert len(ann) == 1 and ann.filenames == ["ade20k/images/ade_7.jpg"]
    assert names_of(ann.categories[0]) == {"Engagement", "Anticipation", "Fatigue"}
    assert ann.vad[0].tolist() == [7, 5.5, 5.5]
    assert ann.boxes[0].tolist() == [1, 2, 200, 250]


def test_load_mat_errors(annotations_mat: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        load_mat(annotations_mat, "training")
    with pytest.raises(ValueError, match="no variable 'test'"):
        load_mat(annotations_mat, "test")
    bad = tmp_path / "bad.mat"
    scipy.io.savemat(
        bad,
        {
            "train": struct_array(
                [
                    image("x.jpg", "f", 10, 10, train_person([0, 0, 5, 5], cells("Peace", "Joy"), (1, 1, 1))),
                ]
            )
        },
    )
    with pytest.raises(ValueError, match=r"train image 0 \(f/x.jpg\) person 0: unknown categories \['Joy'\]"):
        load_mat(bad, "train")


# --- box checks ----------------------------------------------------------------------------------


def test_check_boxes_synthetic(tmp_path: Path) -> None:
    ann = load_csv(
        write_csv(
            tmp_path / "annot.csv",
            [
                csv_row(size=(80, 60), box=(0, 0, 80, 60)),  # inside, touching the edges
                csv_row(size=(60, 80), box=(10, 5, 75, 50)),  # fits only as 80 wide, 60 high
                csv_row(size=(80, 60), box=(-3, 5, 50, 40)),  # leaves the image by 3 px
                csv_row(size=(80, 60), box=(50, 5, 50, 40)),  # inside but empty
                csv_row(size=(50, 50), box=(10, 10, 62, 40)),  # square: swapping does not help, 12 px out
            ],
        )
    )
    check = check_boxes(ann)
    assert (check.n, check.inside, check.inside_if_swapped, check.outside, check.degenerate) == (
        5,
        2,
        1,
        2,
        1,
    )
    assert check.swapped_rows.tolist() == [1] and check.outside_rows.tolist() == [2, 4]
    assert check.max_overshoot == 12.0
    assert check.summary() == {
        "n": 5,
        "inside": 2,
        "inside_if_swapped": 1,
        "outside": 2,
        "degenerate": 1,
        "max_overshoot": 12.0,
    }


# --- the real CSVs -------------------------------------------------------------------------------


def raw_rows(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with (EMOTIC / name).open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize(("name", "n"), REAL)
def test_real_csv_rows_and_categories(name: str, n: int) -> None:
    header, rows = raw_rows(name)
    ann = load_csv(EMOTIC / name)
    assert len(ann) == len(rows) == n
    assert ann.source == f"emotic/{name}"
    category_columns = header[8:34]
    assert category_columns != list(CATEGORIES) and set(category_columns) == set(CATEGORIES)
    for i, row in enumerate(rows):
        assert names_of(ann.categories[i]) == {c for c in category_columns if float(row[c]) == 1.0}, i
    assert ann.filenames == [r["Filename"] for r in rows]
    assert ann.body_arrays == [r["Crop_name"] for r in rows]
    assert category_counts(ann).sum() == ann.categories.sum()


@pytest.mark.parametrize(("name", "n"), REAL)
def test_real_csv_values(name: str, n: int) -> None:
    ann = load_csv(EMOTIC / name)
    assert len(ann) == n
    assert ann.vad.min() >= 1.0 and ann.vad.max() <= 10.0
    per_person = ann.categories.sum(axis=1)
    if name == "annot_arrs_val.csv":
        # Every val person has at least 3 categories (the union over several annotators).
        assert per_person.min() == 3
    else:
        # Exactly one test person has no category at all (row 710, line 712 of the file).
        assert np.flatnonzero(per_person == 0).tolist() == [710]
    assert (category_counts(ann) > 0).all()


@pytest.mark.parametrize(("name", "n"), REAL)
def test_real_csv_boxes(name: str, n: int) -> None:
    _, rows = raw_rows(name)
    check = check_boxes(load_csv(EMOTIC / name))
    assert check.n == len(rows) == n == check.inside + check.inside_if_swapped + check.outside
    assert check.degenerate == 0
    expected = {"annot_arrs_val.csv": (2202, 152, 43), "annot_arrs_test.csv": (6752, 432, 95)}[name]
    assert (check.inside, check.inside_if_swapped, check.outside) == expected
    # Independently: rows whose box leaves the stated width x height but fits height x width.
    swapped = []
    for i, r in enumerate(rows):
        w, h = float(r["Width"]), float(r["Height"])
        x1, y1, x2, y2 = (float(r[c]) for c in ("X_min", "Y_min", "X_max", "Y_max"))
        fits = x1 >= 0 and y1 >= 0
        if fits and not (x2 <= w and y2 <= h) and (x2 <= h and y2 <= w):
            swapped.append(i)
    assert check.swapped_rows.tolist() == swapped
    if name == "annot_arrs_val.csv":
        assert 0 in check.swapped_rows  # Width 317, Height 380, box x up to 379


# --- EmoticImages --------------------------------------------------------------------------------


def gradient_bgr(h: int = 60, w: int = 80) -> np.ndarray:
    """Every pixel a different colour: blue = 3x, green = 4y, red = 128."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([3 * x, 4 * y, np.full_like(x, 128)], axis=-1).astype(np.uint8)


def one_person(
    tmp_path: Path, box: tuple[float, float, float, float], filename: str = "scene.png"
) -> EmoticAnnotations:
    return load_csv(
        write_csv(tmp_path / "annot.csv", [csv_row(filename=filename, box=box, cats=("Fear", "Pain"))])
    )


def test_images_body_is_box_crop(tmp_path: Path) -> None:
    img = gradient_bgr()
    folder = tmp_path / "images" / "ade20k" / "deep"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "scene.png"), img)
    rgb = img[:, :, ::-1]

    ds = EmoticImages(
        one_person(tmp_path, (10, 5, 50, 40)),
        images_root=tmp_path / "images",
        body_size=(35, 40),
        context_size=(60, 80),
    )
    body, context, cats, vad = ds[0]
    assert len(ds) == 1
    np.testing.assert_array_equal(body, rgb[5:40, 10:50])
    np.testing.assert_array_equal(context, rgb)
    assert names_of(cats) == {"Fear", "Pain"} and cats.dtype == np.float32 and cats.shape == (26,)
    assert vad.tolist() == [5, 6, 7] and vad.dtype == np.float32

    # A box leaving the image is clipped to it.
    ds = EmoticImages(
        one_person(tmp_path, (-5, -3, 30, 200)),
        images_root=tmp_path / "images",
        body_size=(60, 30),
        context_size=(60, 80),
    )
    np.testing.assert_array_equal(ds[0][0], rgb[0:60, 0:30])

    # Resized to the requested (height, width).
    ds = EmoticImages(
        one_person(tmp_path, (10, 5, 50, 40)),
        images_root=tmp_path / "images",
        body_size=(16, 12),
        context_size=(24, 32),
    )
    body, context, _, _ = ds[0]
    assert body.shape == (16, 12, 3) and context.shape == (24, 32, 3)
    assert body.dtype == context.dtype == np.uint8

    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=1)))
    assert [tuple(t.shape) for t in batch] == [(1, 16, 12, 3), (1, 24, 32, 3), (1, 26), (1, 3)]


def test_images_are_rgb(tmp_path: Path) -> None:
    blue = np.zeros((40, 50, 3), np.uint8)
    blue[:, :, 0] = 255  # BGR
    cv2.imwrite(str(tmp_path / "scene.png"), blue)
    body, context, _, _ = EmoticImages(one_person(tmp_path, (5, 5, 25, 35)), images_root=tmp_path)[0]
    assert body.shape == (128, 128, 3) and context.shape == (224, 224, 3)
    assert (body.reshape(-1, 3) == (0, 0, 255)).all() and (context.reshape(-1, 3) == (0, 0, 255)).all()


def test_images_missing_and_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="'missing.png'"):
        EmoticImages(one_person(tmp_path, (0, 0, 5, 5), filename="missing.png"), images_root=tmp_path)
    for sub in ("a", "b"):
        (tmp_path / "imgs" / sub).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "imgs" / sub / "scene.png"), gradient_bgr())
    with pytest.raises(ValueError, match="'scene.png' is ambiguous"):
        EmoticImages(one_person(tmp_path, (0, 0, 5, 5)), images_root=tmp_path / "imgs")
    # A folder-qualified name (as from the .mat) picks one of them.
    ds = EmoticImages(
        one_person(tmp_path, (0, 0, 5, 5), filename="b/scene.png"), images_root=tmp_path / "imgs"
    )
    assert ds.images == [tmp_path / "imgs" / "b" / "scene.png"]


def test_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    context, body = rng.integers(0, 256, (30, 40, 3), np.uint8), rng.integers(0, 256, (20, 10, 3), np.uint8)
    np.save(tmp_path / "ctx.npy", context)
    np.save(tmp_path / "body.npy", body)
    ann = one_person(tmp_path, (0, 0, 5, 5))

    got = EmoticImages(ann, arrays_root=tmp_path, body_size=(20, 10), context_size=(30, 40))[0]
    np.testing.assert_array_equal(got[0], body)
    np.testing.assert_array_equal(got[1], context)
    got = EmoticImages(ann, arrays_root=tmp_path)[0]
    assert got[0].shape == (128, 128, 3) and got[1].shape == (224, 224, 3) and got[0].dtype == np.uint8

    (tmp_path / "body.npy").unlink()
    with pytest.raises(FileNotFoundError, match="'body.npy'"):
        EmoticImages(ann, arrays_root=tmp_path)
    with pytest.raises(ValueError, match="exactly one of"):
        EmoticImages(ann)
    with pytest.raises(ValueError, match="exactly one of"):
        EmoticImages(ann, images_root=tmp_path, arrays_root=tmp_path)
    no_arrays = load_csv(write_csv(tmp_path / "plain.csv", [csv_row()[:-2]], header=HEADER[:-2]))
    with pytest.raises(ValueError, match="names no Arr_name/Crop_name"):
        EmoticImages(no_arrays, arrays_root=tmp_path)
