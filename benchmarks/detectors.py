"""Face detector speed and recall on real frames: the MTCNN presets, downscaling, Haar.

    python -m benchmarks.detectors [DETECTOR ...] [--videos V ...] [--photos DIR]
                                   [--per-video 10] [--max-side 640] [--threads 2] [--rounds 3]

DETECTOR is ``NAME[:KEY=VALUE,...]`` with a registered detector and its options, e.g.
``mtcnn:preset=accurate`` or ``mtcnn:preset=fast,max_side=320``; default: MTCNN ``accurate``
(facenet-pytorch's defaults, the reference), ``fast`` (the plugin's default), ``fast`` on a
copy downscaled to 320 pixels, and Haar. Frames are ``--per-video`` frames spread evenly
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
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import match_boxes, print_table, set_threads
from trainers.common import parse_arch_options
from vidaffect.api import Detector
from vidaffect.frames import Detections
from vidaffect.paths import data_dir
from vidaffect.plugins import get_registry
from vidaffect_plugins.capture import decode_image

DATA = data_dir()
DEFAULT_VIDEOS = ["facenet_video.mp4", "pyfeat_WolfgangLanger_Pexels.mp4", "liveportrait_d9.mp4",
                  "liveportrait_src_s18.mp4"]
DEFAULT_DETECTORS = ["mtcnn:preset=accurate", "mtcnn:preset=fast", "mtcnn:preset=fast,max_side=320", "haar"]


def fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` downscaled (area interpolation) so its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def video_frames(path: Path, n: int) -> list[np.ndarray]:
    """``n`` frames spread evenly over the video (BGR uint8).

    Raises:
        SystemExit: the video cannot be opened or gives no frame.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    frames = []
    try:
        count = max(1, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        wanted = {round(i * (count - 1) / max(1, n - 1)) for i in range(n)}
        index = 0
        while len(frames) < len(wanted):
            ok, img = cap.read()
            if not ok:
                break
            if index in wanted:
                frames.append(img)
            index += 1
    finally:
        cap.release()
    if not frames:
        raise SystemExit(f"{path} gave no frame")
    return frames


def load_frames(videos: list[Path], photos: Path | None, per_video: int, max_side: int) -> list[np.ndarray]:
    """The benchmark's frames: ``per_video`` from each video, then every decodable photo."""
    frames = [f for v in videos for f in video_frames(v, per_video)]
    if photos is not None:
        for path in sorted(photos.iterdir()):
            img = decode_image(path) if path.suffix.lower() in (".jpg", ".jpeg", ".png") else None
            if img is not None:
                frames.append(img)
    return [np.ascontiguousarray(fit(f, max_side)) for f in frames]


def make_detector(spec: str) -> Detector:
    """An opened detector from ``NAME[:KEY=VALUE,...]``.

    Raises:
        PluginError: no detector of that name is installed.
        pydantic.ValidationError: an option it does not take, or a bad value.
    """
    name, _, opts = spec.partition(":")
    cls = get_registry().get("detector", name)
    det = cls(cls.Config(**parse_arch_options([o for o in opts.split(",") if o])))
    det.open()
    return det  # type: ignore[return-value]


def time_detectors(detectors: dict[str, Detector], frames: list[np.ndarray],
                   rounds: int) -> tuple[dict[str, list[float]], dict[str, list[Detections]]]:
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
        rows.append([key, f"{med:.1f}", f"{float(np.percentile(per_frame, 95)):.1f}",
                     sum(len(d) for d in found[key]), f"{100 * matched / max(total, 1):.0f}%",
                     f"{ref_ms / med:.2f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.detectors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("detectors", nargs="*", help="NAME[:KEY=VALUE,...]; the first is the reference")
    p.add_argument("--videos", nargs="*", type=Path, help=f"default: {', '.join(DEFAULT_VIDEOS)} from {DATA / 'videos'}")
    p.add_argument("--photos", default=str(DATA / "photos"), help="folder of photos ('' for none)")
    p.add_argument("--per-video", type=int, default=10, help="frames taken from each video")
    p.add_argument("--max-side", type=int, default=640, help="downscale frames to this longer side")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per detector (median per frame)")
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
    detectors = {spec: make_detector(spec) for spec in args.detectors or DEFAULT_DETECTORS}
    ms, found = time_detectors(detectors, frames, args.rounds)
    sizes = sorted({f"{f.shape[1]}x{f.shape[0]}" for f in frames})
    print_table(f"Face detectors, {len(frames)} frames ({', '.join(sizes)}), {args.threads} thread(s), "
                f"one frame per call", ["detector", "ms/frame p50", "p95", "faces", "recall vs reference",
                                        "speed vs reference"], table_rows(ms, found))


if __name__ == "__main__":
    main()
