"""Per-stage counters and latency percentiles, reported by every stage process."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LATENCY_SAMPLES = 4096
REPORT_EVERY_S = 0.5
"""How often a stage sends its counters to the supervisor (seconds)."""


@dataclass
class StageMetrics:
    """Counters of one stage worker.

    Attributes:
        frames_in / frames_out: frames received / passed on (or written, for sinks).
        dropped: frames this stage received (a source: read) and did not pass on: a live
            source's drop-oldest when downstream was busy, the newest frame in a source's hand
            when the stream was stopped, and any stage's frames in flight when the run was
            aborted or the stage terminated. At every stage, ``frames_in == frames_out +
            dropped``.
        malformed: messages that failed to decode or whose ``meta`` failed validation
            (dropped and counted).
        refused: connections refused by the CurveZMQ check (a peer without the run's key;
            tcp transport): none of their messages was delivered.
        skipped: frames not handed to a busy sink of a live pipeline (that sink counts them
            as ``lost``), so the other sinks kept up.
        lost: frames that should have reached this stage and never did: missing after
            reordering (a crashed worker's frames in flight), or, at a sink, not sent to it
            because it was busy (its sender counts them as ``skipped``), or still in a socket
            when the run was aborted (counted by the supervisor, :func:`count_in_transit`).
            They are not part of ``frames_in``: along a hop, ``sent == frames_in + lost``.
        faces: faces seen in frames passed on.
        reconnects, gap_s: stream reconnects of a source and the seconds without frames
            (the outage going on included).
        down, outage_s: 1 while the source's stream is down (reconnecting), and how long
            it has been down; 0 once it is back.
        unreadable: frames a source's file announced but could not decode (a truncated or
            damaged file, see :meth:`vidaffect.api.Source.undelivered`); never read, so not
            part of ``frames_in``.
        detected: frames the detector ran on (with tracking, the others get tracked boxes).
        busy_s: seconds spent inside the plugin (detect, classify, write, read).
        bytes_out: bytes of the frame messages this stage sent (headers and buffers, each
            downstream stage counted).
        cpu_s: CPU seconds (user + system, all threads) of the process since its loop began
            (model loading excluded).
        latency_ms: recent capture -> output latencies (milliseconds).
        next_seq: a source's next sequence number (None at other stages): the supervisor
            numbers a source restarted on another host on from it (see
            :attr:`~vidaffect.runtime.graph.Launch.seq_from`).
    """

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    malformed: int = 0
    refused: int = 0
    skipped: int = 0
    lost: int = 0
    faces: int = 0
    detected: int = 0
    reconnects: int = 0
    gap_s: float = 0.0
    outage_s: float = 0.0
    unreadable: int = 0
    busy_s: float = 0.0
    bytes_out: int = 0
    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    next_seq: int | None = None

    def start_clock(self) -> None:
        """Begin ``wall_s`` and ``cpu_s`` now (the stage's loop starts)."""
        self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def observe_latency(self, ts_ns: int) -> None:
        self.latency_ms.append((time.time_ns() - ts_ns) / 1e6)

    def snapshot(self) -> dict[str, Any]:
        """A msgpack/JSON-able summary with p50/p95/p99 latency."""
        lat = np.fromiter(self.latency_ms, float) if self.latency_ms else None
        pct = (lambda q: round(float(np.percentile(lat, q)), 2)) if lat is not None else (lambda q: None)
        out: dict[str, Any] = {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "malformed": self.malformed,
            "refused": self.refused,
            "skipped": self.skipped,
            "lost": self.lost,
            "faces": self.faces,
            "detected": self.detected,
            "reconnects": self.reconnects,
            "gap_s": round(self.gap_s + self.outage_s, 3),
            "down": int(self.outage_s > 0),
            "unreadable": self.unreadable,
            "busy_s": round(self.busy_s, 3),
            "bytes_out": self.bytes_out,
            "wall_s": round(time.perf_counter() - self.started, 3),
            "cpu_s": round(time.process_time() - self.cpu_started, 3),
            "latency_p50_ms": pct(50),
            "latency_p95_ms": pct(95),
            "latency_p99_ms": pct(99),
        }
        if self.next_seq is not None:
            out["next_seq"] = self.next_seq
        return out


def next_seq_estimate(reports: list[tuple[dict[str, Any], float]], now: float) -> int:
    """The first sequence number for a source started again where its sequence file is not
    there: above the highest ``next_seq`` its earlier starts reported, by the frames the one
    that reported last could have sent since (its measured rate over twice the time since its
    report, plus one report interval), so that numbers stay unique and increasing.

    Args:
        reports: each earlier start's last snapshot and when it arrived (``time.monotonic()``).
        now: ``time.monotonic()`` now.

    Returns:
        0 when no start reported a ``next_seq`` (none sent a report: a source that failed at once).
    """
    seqs = [(at, snap) for snap, at in reports if snap.get("next_seq") is not None]
    if not seqs:
        return 0
    at, last = max(seqs, key=lambda item: item[0])
    wall = float(last.get("wall_s") or 0.0)
    rate = (last.get("frames_out") or 0) / wall if wall > 0 else 0.0
    highest = max(int(snap["next_seq"]) for _, snap in seqs)
    return highest + math.ceil(rate * (2 * max(now - at, 0.0) + REPORT_EVERY_S))


def in_hand(frames_in: int, frames_out: int, dropped: int) -> int:
    """Frames a stage has received and neither passed on nor dropped (in a batch, the reorder
    window or a source's hand): the ones to count as dropped when it stops without finishing
    (abort, SIGTERM, failure, SIGKILL), so that ``frames_in == frames_out + dropped``."""
    return max(0, frames_in - frames_out - dropped)


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine worker snapshots of one stage: sums for counters, max for percentiles, wall time
    and a source's next sequence number."""
    if not snapshots:
        return {}
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for s in snapshots for k in s):  # every key, first-seen order
        values = [s[key] for s in snapshots if s.get(key) is not None]
        if not values:
            out[key] = None
        elif key.startswith("latency") or key in ("wall_s", "next_seq"):
            out[key] = max(values)
        else:
            out[key] = round(sum(values), 3) if isinstance(values[0], float) else sum(values)
    return out


def count_in_transit(stages: dict[str, dict[str, Any]], downstream: dict[str, set[str]]) -> None:
    """Count as ``lost`` at each stage the frames its producers sent that it neither received
    nor already counted lost: frames still in a socket when the run was aborted, or when the
    stage was killed. Changes ``stages`` (merged snapshots by stage name) in place; after it,
    along every hop the producers' ``frames_out`` equals the consumer's ``frames_in + lost``."""
    for stage, m in stages.items():
        producers = [p for p, down in downstream.items() if stage in down and p in stages]
        if not producers or not m:
            continue
        sent = sum(stages[p].get("frames_out") or 0 for p in producers)
        gap = sent - (m.get("frames_in") or 0) - (m.get("lost") or 0)
        if gap > 0:
            m["lost"] = (m.get("lost") or 0) + gap


def reconcile_killed(
    stages: dict[str, dict[str, Any]], downstream: dict[str, set[str]], killed: set[str]
) -> None:
    """Correct the counters of stages that had a worker killed, from what the stages they feed
    saw. A killed worker's last report is up to ``REPORT_EVERY_S`` old: frames it passed on
    after it were counted dropped with it (see :func:`in_hand`), and maybe not even received.
    Every frame a stage passes on reaches each stage it feeds (received, or counted lost
    there), so ``frames_out`` is at least the largest ``frames_in + lost`` among them; the
    difference moves from ``dropped`` to ``frames_out`` (and, past ``dropped``, adds to
    ``frames_in`` too). Changes ``stages`` in place; call before :func:`count_in_transit`."""
    for name in killed:
        m = stages.get(name)
        downs = [stages[d] for d in downstream.get(name, ()) if stages.get(d)]
        if not m or not downs:
            continue
        seen = max((d.get("frames_in") or 0) + (d.get("lost") or 0) for d in downs)
        extra = seen - (m.get("frames_out") or 0)
        if extra <= 0:
            continue
        moved = min(extra, m.get("dropped") or 0)
        m["dropped"] = (m.get("dropped") or 0) - moved
        m["frames_out"] = (m.get("frames_out") or 0) + extra
        m["frames_in"] = (m.get("frames_in") or 0) + extra - moved
