"""The timeline PNG of one stream: who felt what, when.

Top panel (with tracking): one row per face track, coloured by the track's smoothed label
frame by frame (the label colours of the annotated video, :data:`vidaffect.imaging.draw.PALETTE`),
the 40 longest tracks at most. Bottom panel: the share of each label among all faces over
time (each frame's own label, as the per-emotion summary counts them), in up to 120 time bins of at least 4 frames. The x axis is ``time_s`` (see :mod:`vidaffect.events.timeline`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from vidaffect.events.timeline import (
    FaceRow,
    StreamTimeline,
    read_timelines,
    write_timeline_csv,
    write_tracks_csv,
)
from vidaffect.frames import safe_stream_name
from vidaffect.imaging.draw import label_colour

MAX_TRACKS = 40
MAX_BINS = 120
FRAMES_PER_BIN = 4  # at least, so that per-frame noise averages out


def _rgb(label: str | None) -> tuple[float, float, float]:
    b, g, r = label_colour(label)
    return r / 255, g / 255, b / 255


def _frame_step(st: StreamTimeline) -> float:
    """Typical seconds between frames (1 for a single frame)."""
    times = np.array([t for _, t in st.frames], float)
    steps = np.diff(times)
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else 1.0


def _spans(rows: list[FaceRow], step: float) -> list[tuple[str | None, float, float]]:
    """``(label, start, width)`` runs of equal labels; a run breaks at a gap of 2 frames."""
    spans: list[tuple[str | None, float, float]] = []
    for row in rows:
        label = row.smoothed_label or row.label
        if spans and spans[-1][0] == label and row.time_s - (spans[-1][1] + spans[-1][2]) <= step:
            start = spans[-1][1]
            spans[-1] = (label, start, row.time_s + step - start)
        else:
            spans.append((label, row.time_s, step))
    return spans


def _shares(st: StreamTimeline, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (s) and the share of each label among the faces of each bin, (L, B)."""
    times = np.array([t for _, t in st.frames], float)
    bins = min(MAX_BINS, max(1, len(times) // FRAMES_PER_BIN))
    edges = np.linspace(times.min(), times.max() + 1e-9, bins + 1)
    counts = np.zeros((len(labels), len(edges) - 1))
    index = {lab: i for i, lab in enumerate(labels)}
    for row in st.rows:
        label = row.label
        if label in index:
            b = min(int(np.searchsorted(edges, row.time_s, side="right")) - 1, counts.shape[1] - 1)
            counts[index[label], b] += 1
    total = counts.sum(0)
    return (edges[:-1] + edges[1:]) / 2, np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def plot_timeline(st: StreamTimeline, path: Path) -> Path:
    """Write the timeline PNG of ``st`` to ``path`` (see the module docstring)."""
    tracks = st.tracks()
    longest = sorted(tracks, key=lambda t: -len(tracks[t]))[:MAX_TRACKS]
    shown = sorted(longest, key=lambda t: tracks[t][0].time_s)
    labels = list(st.labels) or sorted({r.label for r in st.rows if r.label})
    seen = Counter(r.label for r in st.rows)
    step = _frame_step(st)
    band_h = 0.28 * max(len(shown), 1) + 0.8
    fig = Figure(figsize=(11, band_h + 2.6), dpi=110)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=[band_h, 2.2], hspace=0.6 / band_h) if shown else None
    ax_share = fig.add_subplot(grid[1] if grid is not None else 111)
    if grid is not None:  # there are tracks to show
        ax_tracks = fig.add_subplot(grid[0], sharex=ax_share)
        for y, tid in enumerate(shown):
            for label, start, width in _spans(tracks[tid], step):
                ax_tracks.broken_barh([(start, width)], (y - 0.4, 0.8), facecolors=[_rgb(label)])
        ax_tracks.set_yticks(range(len(shown)), [f"track {t}" for t in shown], fontsize=8)
        ax_tracks.set_ylim(len(shown) - 0.5, -0.5)
        more = f" (the {len(shown)} longest of {len(tracks)})" if len(tracks) > len(shown) else ""
        ax_tracks.set_title(f"stream {st.stream}: smoothed emotion of each face track{more}", fontsize=10)
        ax_tracks.grid(axis="x", alpha=0.3)
        ax_tracks.tick_params(labelbottom=False)
    centres, shares = _shares(st, labels)
    present = [i for i, lab in enumerate(labels) if seen.get(lab)]
    if len(centres) == 1:  # one frame (a photo): a band half a second wide
        centres, shares = np.array([centres[0] - 0.5, centres[0] + 0.5]), np.repeat(shares, 2, axis=1)
    if present:
        ax_share.stackplot(centres, shares[present], colors=[_rgb(labels[i]) for i in present])
    ax_share.set_ylim(0, 1)
    ax_share.set_ylabel("share of faces")
    ax_share.set_xlabel("time (s)")
    faces = len(st.rows)
    title = (
        f"share of each emotion among all faces, per-frame labels ({faces} faces in {len(st.frames)} frames)"
    )
    ax_share.set_title(title if shown else f"stream {st.stream}: {title}", fontsize=10)
    handles = [
        Patch(color=_rgb(labels[i]), label=f"{labels[i]} {100 * seen[labels[i]] / max(faces, 1):.0f}%")
        for i in present
    ]
    if handles:  # beside the share panel: label, share of all faces
        ax_share.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
            frameon=False,
            title="all faces",
            title_fontsize=8,
        )
    fig.subplots_adjust(
        left=0.09, right=0.87, top=1 - 0.35 / fig.get_figheight(), bottom=0.6 / fig.get_figheight()
    )
    path = Path(path)
    fig.savefig(path)
    return path


def write_timeline_files(
    events: str | Path, out: str | Path | None = None, timelines: dict[str, StreamTimeline] | None = None
) -> list[Path]:
    """Write the CSVs and the PNG of every stream of ``events`` into ``out`` (default: the
    events file's folder); the files written, three per stream with frames. ``timelines``:
    :func:`read_timelines` of ``events`` when already read.

    Raises:
        FileNotFoundError: ``events`` does not exist.
    """
    events = Path(events)
    folder = Path(out) if out is not None else events.parent
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stream, st in (timelines if timelines is not None else read_timelines(events)).items():
        if not st.frames:
            continue
        base = folder / f"{events.stem}.{safe_stream_name(stream)}"
        written.append(write_timeline_csv(st, base.with_name(base.name + ".timeline.csv")))
        written.append(write_tracks_csv(st, base.with_name(base.name + ".tracks.csv")))
        written.append(plot_timeline(st, base.with_name(base.name + ".timeline.png")))
    return written
