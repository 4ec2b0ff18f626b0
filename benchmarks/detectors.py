"""Face detector speed and recall on real frames: the MTCNN presets, downscaling, Haar.

    python -m benchmarks.detectors [DETECTOR ...] [--videos V ...] [--photos DIR]
                                   [--per-video 10] [--max-side 640] [--threads 2] [--rounds 3]

DETECTOR is ``NAME[:KEY=VALUE,...]`` with a registered detector and its options, e.g.
``mtcnn:preset=accurate`` or ``mtcnn:preset=fast,max_side=320``; default: MTCNN ``accurate``
(facenet-pytorch's default pyramid: min_face_size 20, factor 0.709; the reference), ``fast``
(the plugin's default: 40, 0.6), ``fast`` on a copy downscaled to 320 pixels, and Haar; all
with their plugin's other defaults (MTCNN keeps faces scoring at least 0.9). Frames are ``--per-video`` frames spread evenly
over each video plus every photo of ``--photos``, each downscaled (never enlarged) so that its
longer side is at most ``--max-side`` pixels, as a ``resize`` setting on the source would.

Each detector sees one frame per call, as in a pipeline with tracking. All detectors are
warmed up on the first frame, then timed in ``--rounds`` alternating rounds over every
frame, so that a slower stretch of the machine hits each of them; a frame's time is its
median over the rounds. Faces are matched to the reference detector's on the same frame
(greedy, IoU >= 0.5): "recall vs reference" is the share of the reference's faces found.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import ValidationError

from benchmarks.common import match_boxes, parse_spec, print_table, read_frames, set_threads
from vidaffect.api import Detector
from vidaffect.errors import SourceError, VidaffectError
from vidaffect.frames import Detections
from vidaffect.plugin_manager import get_registry
from vidaffect.sample_data import data_dir
from vidaffect_plugins.capture import IMAGE_SUFFIXES, decode_image, output_size, resize_image

DATA = data_dir()
DEFAULT_VIDEOS = [
    "facenet_video.mp4",
    "pyfeat_WolfgangLanger_Pexels.mp4",
    "liveportrait_d9.mp4",
    "liveportrait_src_s18.mp4",
]
DEFAULT_DETECTORS = ["mtcnn:preset=accurate", "mtcnn:preset=fast", "mtcnn:preset=fast,max_side=320", "haar"]


def fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` downscaled as a source's ``resize`` would, so that its longer side is at most
    ``max_side`` (never enlarged)."""
    h, w = image.shape[:2]
    return resize_image(image, output_size(w, h, min(max_side, max(w, h))))


def video_frames(path: Path, n: int) -> list[np.ndarray]:
    """``n`` frames spread evenly over the video (BGR uint8), first and last included; the
    frames are counted by reading the video, not taken from its header.

    Raises:
        SystemExit: the video cannot be opened or gives no frame.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    if count == 0:
        raise SystemExit(f"{path} gave no frame")
    wanted = {round(i * (count - 1) / max(1, n - 1)) for i in range(n)}
    try:
        got = read_frames(path, wanted)
    except SourceError as exc:
        raise SystemExit(str(exc)) from None
    frames = [got[i] for i in sorted(got)]
    if len(frames) < len(wanted):
        print(f"warning: {path.name}: read {len(frames)} of {len(wanted)} frames", file=sys.stderr)
    return frames


def load_frames(videos: list[Path], photos: Path | None, per_video: int, max_side: int) -> list[np.ndarray]:
    """The benchmark's frames: ``per_video`` from each video, then every decodable photo."""
    frames = [f for v in videos for f in video_frames(v, per_video)]
    if photos is not None:
        for path in sorted(photos.iterdir()):
            img = decode_image(path) if path.suffix.lower() in IMAGE_SUFFIXES else None
            if img is not None:
                frames.append(img)
    return [fit(f, max_side) for f in frames]


def make_detector(spec: str) -> Detector:
    """An opened detector from ``NAME[:KEY=VALUE,...]``.

    Raises:
        PluginError: no detector of that name is installed.
        pydantic.ValidationError: an option it does not take, or a bad value.
    """
    name, options = parse_spec(spec)
    cls = get_registry().get("detector", name)
    det = cls(cls.Config(**options))
    det.open()
    return det  # type: ignore[return-value]


def time_detectors(
    detectors: dict[str, Detector], frames: list[np.ndarray], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[Detections]]]:
    """Per detector: each frame's median ms over ``rounds`` alternating rounds, and its faces
    (from the last round)."""
    for det in detectors.values():
        det.detect([frames[0]])  # warm-up: first-call allocations and thread pools
    times: dict[str, list[list[float]]] = {k: [[] for _ in frames] for k in detectors}
    found: dict[str, list[Detections]] = {}
    for _ in range(rounds):
        for key, det in detectors.items():
            out = []
            for i, frame in enumerate(frames):
                t0 = time.perf_counter()
                out.append(det.detect([frame])[0])
                times[key][i].append((time.perf_counter() - t0) * 1000)
            found[key] = out
    return {k: [statistics.median(t) for t in v] for k, v in times.items()}, found


def recall(reference: list[Detections], other: list[Detections]) -> tuple[int, int]:
    """``(matched faces, reference faces)`` over all frames (IoU >= 0.5, greedy, one-to-one)."""
    matched = total = 0
    for ref, oth in zip(reference, other):
        total += len(ref)
        matched += len(match_boxes(ref.boxes.tolist(), oth.boxes.tolist(), 0.5))
    return matched, total


def table_rows(ms: dict[str, list[float]], found: dict[str, list[Detections]]) -> list[list[Any]]:
    """One row per detector; the first detector is the reference for recall and speed."""
    ref_key = next(iter(ms))
    ref_ms = statistics.median(ms[ref_key])
    rows = []
    for key, per_frame in ms.items():
        matched, total = recall(found[ref_key], found[key])
        med = statistics.median(per_frame)
        rows.append(
            [
                key,
                f"{med:.1f}",
                f"{float(np.percentile(per_frame, 95)):.1f}",
                sum(len(d) for d in found[key]),
                f"{100 * matched / max(total, 1):.0f}%",
                f"{ref_ms / med:.2f}",
            ]
        )
    return rows


def positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.detectors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("detectors", nargs="*", help="NAME[:KEY=VALUE,...]; the first is the reference")
    p.add_argument(
        "--videos", nargs="*", type=Path, help=f"default: {', '.join(DEFAULT_VIDEOS)} from {DATA / 'videos'}"
    )
    p.add_argument("--photos", default=str(DATA / "photos"), help="folder of photos ('' for none)")
    p.add_argument("--per-video", type=positive, default=10, help="frames taken from each video")
    p.add_argument("--max-side", type=positive, default=640, help="downscale frames to this longer side")
    p.add_argument("--threads", type=positive, default=2)
    p.add_argument("--rounds", type=positive, default=3, help="timed rounds per detector (median per frame)")
    args = p.parse_args(argv)
    videos = args.videos if args.videos is not None else [DATA / "videos" / v for v in DEFAULT_VIDEOS]
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        p.error(f"video not found: {', '.join(missing)} (set VIDAFFECT_DATA or give --videos)")
    photos = Path(args.photos) if args.photos else None
    if photos is not None and not photos.is_dir():
        p.error(f"--photos: {photos} is not a folder")
    set_threads(args.threads)
    frames = load_frames(videos, photos, args.per_video, args.max_side)
    if not frames:
        p.error("no frames: give --videos or --photos")
    try:
        detectors = {spec: make_detector(spec) for spec in args.detectors or DEFAULT_DETECTORS}
    except (VidaffectError, ValidationError) as exc:
        p.error(str(exc))
    ms, found = time_detectors(detectors, frames, args.rounds)
    sizes = sorted({f"{f.shape[1]}x{f.shape[0]}" for f in frames})
    print_table(
        f"Face detectors, {len(frames)} frames ({', '.join(sizes)}), {args.threads} thread(s), "
        f"one frame per call",
        ["detector", "ms/frame p50", "p95", "faces", "recall vs reference", "speed vs reference"],
        table_rows(ms, found),
    )


if __name__ == "__main__":
    main()
