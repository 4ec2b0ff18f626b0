"""Plain-text tables of run metrics and emotion summaries, printed at the end of a run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from vidaffect.events.timeline import StreamTimeline, read_timelines

COLUMNS = [
    ("stage", "stage", "<"),
    ("frames_in", "in", ">"),
    ("frames_out", "out", ">"),
    ("dropped", "dropped", ">"),
    ("lost", "lost", ">"),
    ("malformed", "malformed", ">"),
    ("busy_s", "busy s", ">"),
    ("latency_p50_ms", "p50 ms", ">"),
    ("latency_p95_ms", "p95 ms", ">"),
]


def format_table(rows: list[list[str]], aligns: list[str]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(aligns))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, aligns, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def stage_table(stages: dict[str, dict[str, Any]]) -> str:
    """Per-stage counters: frames in/out, dropped, lost, malformed, busy time, latency."""
    rows = [[title for _, title, _ in COLUMNS]]
    for name, m in stages.items():
        row = [name]
        for key, _, _ in COLUMNS[1:]:
            v = m.get(key)
            row.append("-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v)))
        rows.append(row)
    return format_table(rows, [a for _, _, a in COLUMNS])


def plugin_counter_lines(stages: dict[str, dict[str, Any]]) -> list[str]:
    """One line per stage whose plugin reported counters (``plugin_*`` metrics, see
    :meth:`vidaffect.api.Plugin.counters`), e.g. ``sink-2-mqtt: events_sent 240, events_dropped 0``."""
    lines = []
    for name, m in stages.items():
        own = {k.removeprefix("plugin_"): v for k, v in m.items() if k.startswith("plugin_")}
        if own:
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in own.items()))
    return lines


def emotion_summary(
    jsonl: str | Path, timelines: dict[str, StreamTimeline] | None = None
) -> tuple[str, dict[str, Any]]:
    """Per-emotion counts of the top-1 label over all faces of an events JSONL file (read with
    :func:`vidaffect.events.timeline.read_timelines`, which skips lines that are not JSON objects,
    such as a half line at the end of a killed run; ``timelines`` when already read).

    Returns:
        ``(table_text, stats)`` with stats ``frames``, ``frames_with_faces``, ``faces`` and
        ``labels`` (label -> count).
    """
    streams = (timelines if timelines is not None else read_timelines(jsonl)).values()
    counts: Counter[str] = Counter(r.label for st in streams for r in st.rows if r.label)
    frames = sum(len(st.frames) for st in streams)
    with_faces = sum(len({r.seq for r in st.rows}) for st in streams)
    faces = sum(len(st.rows) for st in streams)
    rows = [["emotion", "faces", "share"]]
    for label, n in counts.most_common():
        rows.append([label, str(n), f"{100 * n / max(faces, 1):.1f}%"])
    stats = {"frames": frames, "frames_with_faces": with_faces, "faces": faces, "labels": dict(counts)}
    return format_table(rows, ["<", ">", ">"]), stats
