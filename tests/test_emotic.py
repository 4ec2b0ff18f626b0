"""EMOTIC: multilabel metrics and losses, training on generated data, evaluation outputs,
comparison, and the classifier plugin alone and inside a pipeline on a real clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, NEEDS_DATA
from emotic_helpers import make_emotic_set
from pipeline_helpers import read_events, run_cli, write_config
from safetensors.torch import load_file

from vidaffect.events.build import EVENT_VERSION, load_event_schema
from vidaffect.frames import Frame
from vidaffect.models.emotic_labels import CATEGORIES
from vidaffect.models.meta import read_meta
from vidaffect_plugins.classifiers.emotic import EmoticClassifier, expand_face_box, hog_person_for
from vidaffect_trainers import multilabel
from vidaffect_trainers.emotic.__main__ import main as cli
from vidaffect_trainers.emotic.losses import category_loss, kosti_weights, positive_weights

# --- metrics and losses ----------------------------------------------------------------------


def test_ap_of_perfect_random_prior_and_inverted_predictors() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((20000, 3)) < [0.05, 0.2, 0.6]).astype(int)
    perfect = multilabel.per_category_ap(y, y + rng.random(y.shape) * 0.5)
    assert np.allclose(perfect, 1.0)
    random_ap = multilabel.per_category_ap(y, rng.random(y.shape))
    assert np.allclose(random_ap, y.mean(0), atol=0.02)  # random scores: AP ~ prevalence
    prior = multilabel.per_category_ap(y, multilabel.prior_scores(y[:100], len(y)))
    assert np.allclose(prior, y.mean(0))  # tied scores: AP is exactly the prevalence
    inverted = multilabel.per_category_ap(y, -y + rng.random(y.shape) * 0.5)
    assert (inverted < y.mean(0)).all()
    assert np.isnan(multilabel.per_category_ap(np.zeros((5, 1), int), np.ones((5, 1))))[0]
    assert multilabel.mean_ap(np.array([1.0, np.nan, 0.5])) == 0.75


def test_thresholds_cooccurrence_and_vad_error() -> None:
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    s = np.array([[0.9, 0.1], [0.6, 0.7], [0.4, 0.8], [0.2, 0.3]])
    assert np.allclose(multilabel.best_f1_thresholds(y, s), [0.6, 0.7])
    c = multilabel.cooccurrence(y)
    assert c.tolist() == [[2, 1], [1, 2]]
    assert np.allclose(multilabel.conditional_cooccurrence(c), [[1, 0.5], [0.5, 1]])
    assert np.allclose(multilabel.vad_mae(np.ones((2, 3)), np.array([[2, 1, 1], [1, 1, 4]])), [0.5, 0, 1.5])
    with pytest.raises(ValueError, match="0 or 1"):
        multilabel.per_category_ap(np.array([[2]]), np.array([[0.5]]))


def test_losses_weight_rare_categories_and_prefer_right_answers() -> None:
    w = positive_weights(np.array([10, 50, 0, 100]), 100, power=1.0)
    assert torch.allclose(w, torch.tensor([9.0, 1.0, 1.0, 1.0]))  # none / all positive: neutral
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    kw = kosti_weights(targets)
    assert torch.allclose(kw, 1 / torch.log(1.2 + torch.tensor([0.75, 0.25])))
    assert kosti_weights(torch.zeros(3, 1)).item() == pytest.approx(1e-4)
    right, wrong = targets * 8 - 4, 4 - targets * 8
    for kind in ("bce", "kosti"):
        assert category_loss(kind, right, targets) < category_loss(kind, wrong, targets)
    with pytest.raises(ValueError, match="unknown category loss"):
        category_loss("l3", right, targets)


# --- training, evaluation, comparison on generated data --------------------------------------


@pytest.fixture(scope="module")
def emotic_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small model trained for a few epochs on generated data (one training per module)."""
    root = tmp_path_factory.mktemp("emotic")
    paths = {
        name: make_emotic_set(root, name, n, seed)
        for name, n, seed in (("train", 96, 0), ("val", 48, 1), ("test", 48, 2))
    }
    paths["images"], paths["out"] = root / "images", root / "run"
    args = [
        "train",
        "--train",
        str(paths["train"]),
        "--val",
        str(paths["val"]),
        "--images",
        str(paths["images"]),
        "--out",
        str(paths["out"]),
        "--backbone",
        "alexnet",
        "--body-size",
        "64",
        "--context-size",
        "64",
        "--batch-size",
        "16",
        "--quiet",
        "--threads",
        "1",
    ]
    assert cli([*args, "--epochs", "2"]) == 0
    paths["first_history"] = root / "history-2.json"
    paths["first_history"].write_text((paths["out"] / "history.json").read_text())
    assert cli([*args, "--epochs", "4"]) == 0  # resumes at epoch 2
    paths["checkpoint"] = paths["out"] / "best.safetensors"
    return paths


@pytest.mark.slow
def test_training_loss_falls_and_resume_continues(emotic_run: dict[str, Path]) -> None:
    history = json.loads((emotic_run["out"] / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[:2] == json.loads(emotic_run["first_history"].read_text())  # epochs 1-2 not redone
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    meta = read_meta(emotic_run["checkpoint"])
    assert meta.task == "multilabel" and meta.labels == list(CATEGORIES)
    assert meta.context_size == (64, 64) and meta.input_size == (64, 64)
    assert meta.thresholds is not None and len(meta.thresholds) == 26
    assert meta.training["data"] == f"{emotic_run['train'].parent.name}/train.csv"


@pytest.mark.slow
def test_evaluate_beats_the_prior_and_writes_the_report(
    emotic_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    assert (
        cli(
            [
                "evaluate",
                "--checkpoint",
                str(emotic_run["checkpoint"]),
                "--annotations",
                str(emotic_run["test"]),
                "--images",
                str(emotic_run["images"]),
                "--report",
                str(report),
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 48
    assert summary["mAP"] > summary["prior_mAP"] + 0.1  # colours decide the labels: learnable
    assert summary["ap"]["Affection"] is None and summary["ap"]["Engagement"] == 1.0  # absent / always there
    for name in (
        "metrics.json",
        "average_precision.csv",
        "average_precision.png",
        "cooccurrence_true.csv",
        "cooccurrence_true.png",
        "cooccurrence_pred.csv",
        "cooccurrence_pred.png",
        "learning_curves.png",
    ):
        assert (report / name).stat().st_size > 0, name
    rows = (report / "cooccurrence_true.csv").read_text().splitlines()
    assert len(rows) == 27 and rows[0].split(",")[1:] == list(CATEGORIES)
    peace = rows[1 + CATEGORIES.index("Peace")].split(",")[1:]
    assert float(peace[CATEGORIES.index("Peace")]) == 1.0 and float(peace[CATEGORIES.index("Fear")]) == 0.0


@pytest.mark.slow
def test_compare_and_stats(
    emotic_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["compare", str(emotic_run["out"]), "--repeats", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["backbone"] == "alexnet" and row["params_m"] > 1 and row["gmacs"] > 0 and row["val_mAP"] > 0
    assert cli(["stats", str(emotic_run["test"]), "--report", str(tmp_path)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["persons"] == 48 and stats["category_counts"]["Engagement"] == 48
    assert stats["labels_per_person"]["min"] >= 3
    assert (tmp_path / "cooccurrence_test.png").is_file()


@pytest.mark.skipif(
    not (DATA / "emotic" / "annot_arrs_test.csv").is_file(),
    reason=f"needs the EMOTIC annotation CSVs in the shared data folder ({DATA}/emotic; set VIDAFFECT_DATA)",
)
def test_prior_map_of_the_real_test_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    val, test = DATA / "emotic" / "annot_arrs_val.csv", DATA / "emotic" / "annot_arrs_test.csv"
    assert cli(["stats", str(test), "--prior-from", str(val), "--report", str(tmp_path)]) == 0
    stats = json.loads(capsys.readouterr().out)
    freq = np.array(list(stats["category_frequency"].values()))
    assert stats["prior_mAP"] == pytest.approx(freq.mean(), abs=1e-3)  # the floor: mean prevalence
    assert 0.1 < stats["prior_mAP"] < 0.3
    assert stats["boxes"]["inside_if_swapped"] > 0


# --- the classifier plugin -------------------------------------------------------------------


def test_plugin_refuses_to_start_without_a_trained_emotic_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vidaffect train --task emotic"):
        EmoticClassifier.Config(checkpoint=str(tmp_path / "none.safetensors"))
    from vidaffect.models.zoo import resolve_checkpoint

    with pytest.raises(ValueError, match="not an EMOTIC checkpoint"):
        EmoticClassifier.Config(checkpoint=str(resolve_checkpoint("default")))  # a FER model
    with pytest.raises(ValueError, match="Field required"):
        EmoticClassifier.Config()


def test_body_boxes() -> None:
    box = expand_face_box([40, 20, 60, 40], (200, 150), width=3.0, above=0.5, height=6.0)
    assert box == [20.0, 10.0, 80.0, 140.0]
    assert expand_face_box([0, 100, 20, 120], (200, 150), 3.0, 0.5, 6.0) == [
        0.0,
        90.0,
        40.0,
        150.0,
    ]  # clipped
    people = np.array([[30, 10, 40, 120], [0, 0, 200, 150]])
    assert hog_person_for([40, 20, 60, 40], people) == [30.0, 10.0, 70.0, 130.0]  # the smaller holding one
    assert hog_person_for([40, 100, 60, 120], people[:1]) is None  # face below the upper third


def _frames_with_faces(seed: int) -> list[Frame]:
    rng = np.random.default_rng(seed)
    frames = [
        Frame(image=rng.integers(0, 256, (120, 160, 3), np.uint8), stream="s", seq=i, ts_ns=0)
        for i in range(3)
    ]
    frames[0].meta["faces"] = [
        {"bbox": [20, 10, 40, 35], "score": 0.9},
        {"bbox": [100, 30, 130, 60], "score": 0.9},
    ]
    frames[2].meta["faces"] = [
        {"bbox": [60, 20, 90, 50], "score": 0.9},
        {"bbox": [170, 10, 190, 30], "score": 0.9},
    ]  # the second has left the frame
    return frames


@pytest.mark.slow
def test_plugin_classifies_each_face_with_its_own_frame_as_context(emotic_run: dict[str, Path]) -> None:
    clf = EmoticClassifier(
        EmoticClassifier.Config(checkpoint=str(emotic_run["checkpoint"]), top_k=2, max_batch=1)
    )
    clf.open()
    frames = _frames_with_faces(0)
    clf.classify(frames)
    assert frames[1].meta["labels"] == list(CATEGORIES) and frames[1].faces == []
    assert frames[2].faces[1]["emotion"] is None and "body_bbox" not in frames[2].faces[1]
    faces = frames[0].faces + frames[2].faces[:1]
    for face in faces:
        e = face["emotion"]
        assert len(e["probs"]) == 26 and e["label"] in CATEGORIES and len(e["categories"]) <= 2
        assert set(e["categories"]) <= set(CATEGORIES)
        assert all(1 <= v <= 10 for v in e["vad"].values())
        x1, y1, x2, y2 = face["body_bbox"]
        assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120
    # each face alone, in its own frame, gives the same answer as in the batch of frames
    for k, i in ((0, 0), (0, 1), (2, 0)):
        alone = _frames_with_faces(0)[k]
        alone.meta["faces"] = [alone.faces[i]]
        clf.classify([alone])
        assert alone.faces[0]["emotion"]["probs"] == frames[k].faces[i]["emotion"]["probs"]
    # same person, different scene: the context branch changes the output
    other = _frames_with_faces(0)[0]
    other.image[:, 80:] = 0
    other.meta["faces"] = other.faces[:1]
    clf.classify([other])
    assert other.faces[0]["emotion"]["probs"] != frames[0].faces[0]["emotion"]["probs"]


@pytest.mark.slow
def test_plugin_with_the_hog_people_detector(emotic_run: dict[str, Path]) -> None:
    clf = EmoticClassifier(EmoticClassifier.Config(checkpoint=str(emotic_run["checkpoint"]), body="hog"))
    clf.open()  # warms up on a frame smaller than HOG's window (which would crash OpenCV)
    frames = _frames_with_faces(1)
    big = Frame(
        image=np.random.default_rng(2).integers(0, 256, (480, 640, 3), np.uint8), stream="s", seq=9, ts_ns=0
    )
    big.meta["faces"] = [{"bbox": [300, 100, 340, 150], "score": 0.9}]
    clf.classify([*frames, big])
    assert frames[0].faces[0]["emotion"] is not None and big.faces[0]["emotion"] is not None
    assert big.faces[0]["body_bbox"][3] > 150  # below the face, whichever way it was found


@pytest.mark.slow
@NEEDS_DATA
def test_emotic_classifier_in_a_pipeline_on_a_real_clip(emotic_run: dict[str, Path], tmp_path: Path) -> None:
    import jsonschema

    events, video = tmp_path / "events.jsonl", tmp_path / "out.mp4"
    cfg = write_config(
        tmp_path,
        {
            "source": {
                "type": "video",
                "uri": str(DATA / "videos" / "liveportrait_d3.mp4"),
                "max_frames": 12,
            },
            "detector": {"type": "mtcnn"},
            "classifier": {"type": "emotic", "checkpoint": str(emotic_run["checkpoint"])},
            "tracking": {"detect_every": 3},
            "sinks": [
                {"type": "jsonl", "path": str(events)},
                {"type": "video", "path": str(video), "prob_bars": True},
            ],
        },
    )
    proc = run_cli("run", str(cfg))
    assert proc.returncode == 0, proc.stderr
    frames = read_events(events, "frame")
    assert len(frames) == 12
    schema = load_event_schema()
    with_faces = [e for e in frames if e["faces"]]
    assert len(with_faces) >= 10
    for event in frames:
        jsonschema.validate(event, schema)
    face = with_faces[0]["faces"][0]
    assert with_faces[0]["version"] == EVENT_VERSION and with_faces[0]["labels"] == list(CATEGORIES)
    assert set(face["emotion"]["vad"]) == {"valence", "arousal", "dominance"} and len(face["body_bbox"]) == 4
    smoothed = [f["smoothed"]["label"] for e in with_faces for f in e["faces"] if "smoothed" in f]
    assert smoothed and set(smoothed) <= set(CATEGORIES)  # tracks smooth the 26 probabilities
    assert video.stat().st_size > 0


@pytest.mark.slow
def test_ema_run_keeps_the_average_and_picks_thresholds_with_it(
    emotic_run: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert (
        cli(
            [
                "train",
                "--train",
                str(emotic_run["train"]),
                "--val",
                str(emotic_run["val"]),
                "--images",
                str(emotic_run["images"]),
                "--out",
                str(out),
                "--backbone",
                "alexnet",
                "--body-size",
                "64",
                "--context-size",
                "64",
                "--batch-size",
                "16",
                "--quiet",
                "--threads",
                "1",
                "--epochs",
                "1",
                "--ema",
                "0.5",
            ]
        )
        == 0
    )
    record = json.loads((out / "history.json").read_text())[0]
    assert 0 < record["ema_val_mAP"] <= 1 and record["ema_val_vad_mae"] > 0
    state = torch.load(out / "last.pt", weights_only=True)
    assert int(state["ema"]["n_averaged"]) == 6  # 96 persons / batch 16
    best = load_file(out / "best.safetensors")
    assert all(torch.equal(best[k], state["ema"][f"module.{k}"].to(best[k].dtype)) for k in best)
    assert read_meta(out / "best.safetensors").metrics["val_mAP"] == record["ema_val_mAP"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backbone", "alexnet", "--body-size", "32"], "at least 63 for alexnet"),
        (["--batch-size", "1"], "at least 2"),
    ],
)
def test_train_rejects_options_that_would_fail_inside_torch(
    emotic_run: dict[str, Path],
    tmp_path: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [
        "train",
        "--train",
        str(emotic_run["train"]),
        "--val",
        str(emotic_run["val"]),
        "--images",
        str(emotic_run["images"]),
        "--out",
        str(tmp_path / "run"),
        *extra,
    ]
    assert cli(args) == 1
    assert message in capsys.readouterr().err


def test_overlay_shows_vad_and_body_box_also_with_smoothing() -> None:
    from vidaffect.imaging.draw import annotate

    img = np.zeros((200, 200, 3), np.uint8)
    emotion = {
        "label": "Peace",
        "score": 0.8,
        "probs": [0.1] * 26,
        "vad": {"valence": 6.0, "arousal": 4.0, "dominance": 5.0},
    }
    face = {
        "bbox": [60, 40, 100, 90],
        "score": 0.9,
        "emotion": emotion,
        "body_bbox": [40, 30, 120, 190],
        "smoothed": {"label": "Peace", "score": 0.7, "probs": [0.1] * 26},
    }
    out = annotate(img, [face], list(CATEGORIES))
    without = annotate(
        img, [{**face, "emotion": {**emotion, "vad": None}, "body_bbox": None}], list(CATEGORIES)
    )
    below = (slice(92, 130), slice(60, 140))
    assert out[below].any() and not without[below].any()  # the V/A/D tag under the face
    assert out[190, 80].any() and not without[190, 80].any()  # the body box's bottom edge
