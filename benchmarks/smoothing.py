"""Per-track emotion smoothing: label flicker against agreement with the face's expression.

    python -m benchmarks.smoothing [VIDEO ...] [--settings none ema:alpha=0.2,hysteresis=0.1 ...]
                                   [--reference-s 0.5 1 2]

Each clip runs once through the default pipeline (MTCNN ``fast``, tracking, the default FER
classifier) with smoothing off, and the per-frame emotion probabilities of every track are
kept. Each smoothing setting is then replayed over those same sequences with
:class:`vidaffect.analytics.smoothing.Smoother`, so every setting sees identical classifier output; a
setting has no hysteresis unless it names one.

A track's sequence holds the frames on which it had an emotion (predicted boxes are
classified too, so gaps are rare); minutes and windows count those frames at the clip's fps.
Printed per reference window and setting, over tracks at least as long as the longest window
(the first row is the reference itself):

* **changes/min**: changes of the smoothed label per minute of track (a track's first label
  is not a change); the flicker a subscriber of label-change events sees.
* **agreement**: the share of frames whose smoothed label equals the *reference* label, the
  argmax of the raw probabilities averaged over a window of ``--reference-s`` seconds
  *centred* on the frame. A causal filter (the only kind a live pipeline can run) cannot see
  the future half of that window: too little smoothing keeps single-frame noise, too much
  lags behind real changes of expression; both lower agreement.
* **lag**: the median delay, in frames, from a change of the reference label to the
  smoothed label's first agreement with it, over reference changes that it reaches before
  the next one (``reached`` gives the share).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import parse_spec, print_table, read_jsonl, run_config, set_threads
from vidaffect.analytics.smoothing import Smoother
from vidaffect.frames import Frame
from vidaffect.sample_data import data_dir

DEFAULT_VIDEOS = (
    "fer_woman2.mp4",
    "liveportrait_d0.mp4",
    "liveportrait_d3.mp4",
    "liveportrait_d9.mp4",
    "liveportrait_d10.mp4",
    "liveportrait_d11.mp4",
    "liveportrait_d12.mp4",
    "tpsmm_driving.mp4",
)
REFERENCE = "reference"
DEFAULT_SETTINGS = (
    "none",
    "ema:alpha=0.3",
    "ema:alpha=0.2",
    "ema:alpha=0.1",
    "window:window=8",
    "ema:alpha=0.2,hysteresis=0.05",
    "ema:alpha=0.2,hysteresis=0.1",
    "ema:alpha=0.2,hysteresis=0.2",
    "ema:alpha=0.3,hysteresis=0.1",
)


def track_sequences(video: Path, threads: int) -> tuple[list[str], float, list[np.ndarray]]:
    """Run the pipeline on ``video`` without smoothing.

    Returns:
        The classifier's labels, the clip's fps, and per track (in order of first
        appearance) its raw probabilities, float64 ``(frames, labels)``, one row per frame on
        which the track had an emotion.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.jsonl"
        result, _ = run_config(
            {
                "pipeline": {"name": "smoothing", "status": False, "stream_id": "clip"},
                "source": {"type": "video", "uri": str(video), "mode": "offline"},
                "detector": {"type": "mtcnn", "threads": threads},
                "classifier": {"type": "fer", "threads": threads},
                "tracking": {"smoothing": "none"},
                "sinks": [{"type": "jsonl", "path": str(out), "flush_every": 100}],
            },
            f"smoothing benchmark on {video.name}",
        )
        events = sorted(read_jsonl(out), key=lambda e: e["seq"])
    if not events:
        raise SystemExit(f"{video}: no frames")
    labels: list[str] = []
    tracks: dict[int, list[np.ndarray]] = {}
    for e in events:
        for face in e["faces"]:
            emotion, tid = face.get("emotion"), face.get("track_id")
            if emotion and tid is not None:
                labels = labels or list(emotion["probs"])
                tracks.setdefault(int(tid), []).append(np.array([emotion["probs"][k] for k in labels]))
    fps = float(result.sources_info["clip"]["fps"])
    return labels, fps, [np.stack(rows) for rows in tracks.values()]


def make_smoother(spec: str) -> Smoother:
    """A :class:`Smoother` for ``METHOD[:KEY=VALUE,...]``, without hysteresis unless named.

    Raises:
        TypeError, ValueError: an unknown option or a value out of range.
    """
    method, options = parse_spec(spec)
    return Smoother(method, **{"hysteresis": 0.0, **options})


def replay(probs: np.ndarray, labels: list[str], spec: str) -> np.ndarray:
    """The smoothed label index per frame of one track, int ``(frames,)``."""
    smoother = make_smoother(spec)
    image = np.zeros((1, 1, 3), np.uint8)
    out = np.empty(len(probs), np.int64)
    for i, p in enumerate(probs):
        face = {"track_id": 0, "emotion": {"probs": p.tolist()}}
        smoother.apply(Frame(image, "clip", i, None, meta={"faces": [face], "labels": labels}))
        out[i] = labels.index(face["smoothed"]["label"])
    return out


def reference_labels(probs: np.ndarray, half: int) -> np.ndarray:
    """Argmax of the raw probabilities averaged over ``2 * half + 1`` frames centred on each
    frame (shorter at the track's ends), int ``(frames,)``."""
    c = np.vstack([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    n = len(probs)
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    return ((c[hi] - c[lo]) / (hi - lo)[:, None]).argmax(1)


def lags(smoothed: np.ndarray, reference: np.ndarray) -> tuple[list[int], int]:
    """Frames from each change of ``reference`` until ``smoothed`` first equals the new
    label, for changes reached before the next one; and the number of changes."""
    changes = np.flatnonzero(reference[1:] != reference[:-1]) + 1
    ends = [*changes[1:], len(reference)]
    out = []
    for start, end in zip(changes, ends):
        hit = np.flatnonzero(smoothed[start:end] == reference[start])
        if len(hit):
            out.append(int(hit[0]))
    return out, len(changes)


def score(
    tracks: list[tuple[np.ndarray, float]], labels: list[str], spec: str, reference_s: float
) -> list[Any]:
    """One table row for a smoothing setting (or :data:`REFERENCE` itself) over ``(probs, fps)``
    tracks."""
    changes = minutes = agree = frames = reached_n = total_changes = 0.0
    all_lags: list[int] = []
    for probs, fps in tracks:
        reference = reference_labels(probs, int(round(reference_s * fps / 2)))
        smoothed = reference if spec == REFERENCE else replay(probs, labels, spec)
        changes += int(np.count_nonzero(smoothed[1:] != smoothed[:-1]))
        minutes += len(probs) / fps / 60
        agree += int(np.count_nonzero(smoothed == reference))
        frames += len(probs)
        got, n = lags(smoothed, reference)
        all_lags += got
        reached_n += len(got)
        total_changes += n
    if spec == REFERENCE:
        return [
            f"(reference: centred {reference_s:g} s mean)",
            f"{changes / minutes:.1f}",
            "100.0%",
            "0",
            "100%",
        ]
    return [
        spec,
        f"{changes / minutes:.1f}",
        f"{100 * agree / frames:.1f}%",
        f"{np.median(all_lags):.0f}" if all_lags else "-",
        f"{100 * reached_n / total_changes:.0f}%" if total_changes else "-",
    ]


def main(argv: list[str] | None = None) -> None:
    data = data_dir() / "videos"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="*", type=Path, help=f"default: {', '.join(DEFAULT_VIDEOS)} from {data}")
    ap.add_argument(
        "--settings",
        nargs="+",
        default=list(DEFAULT_SETTINGS),
        help="METHOD[:alpha=A|window=W][,hysteresis=H] (no hysteresis unless given); "
        "methods: none, ema, window",
    )
    ap.add_argument(
        "--reference-s",
        type=float,
        nargs="+",
        default=[0.5, 1.0, 2.0],
        help="seconds of the centred reference window (a table each); the shortest "
        "track scored lasts the longest of them",
    )
    ap.add_argument("--threads", type=int, default=1, help="threads of the detector and classifier")
    args = ap.parse_args(argv)
    videos = args.videos or [data / v for v in DEFAULT_VIDEOS]
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        ap.error(f"video not found: {', '.join(missing)} (set VIDAFFECT_DATA or name the videos)")
    for spec in args.settings:  # fail before the slow part
        try:
            make_smoother(spec)
        except (TypeError, ValueError) as exc:
            ap.error(f"setting {spec!r}: {exc}")
    set_threads(args.threads)
    tracks: list[tuple[np.ndarray, float]] = []
    labels: list[str] = []
    for v in videos:
        clip_labels, fps, seqs = track_sequences(v, args.threads)
        if labels and clip_labels and clip_labels != labels:
            raise SystemExit(f"{v}: labels differ from the other clips'")
        labels = labels or clip_labels
        tracks += [(p, fps) for p in seqs if len(p) >= max(args.reference_s) * fps]
    if not tracks:
        raise SystemExit(f"no track lasted {max(args.reference_s):g} s")
    n_frames = sum(len(p) for p, _ in tracks)
    minutes = sum(len(p) / fps for p, fps in tracks) / 60
    for ref in args.reference_s:
        print_table(
            f"Smoothing, {len(tracks)} tracks, {n_frames} face frames ({minutes:.1f} track-minutes) "
            f"from {len(videos)} clips; reference: centred {ref:g} s mean",
            ["setting", "changes/min", "agreement", "lag (frames, p50)", "reached"],
            [score(tracks, labels, spec, ref) for spec in [REFERENCE, *args.settings]],
        )
        print()


if __name__ == "__main__":
    main()
