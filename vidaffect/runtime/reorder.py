"""Restoring frame order after a fan-out, and counting end-of-stream markers.

Workers of a fanned-out stage finish frames out of order; the next stage holds frames in a
bounded window and releases them by sequence number. A frame still missing when the window
is full (or when every producer has sent EOS) is declared lost and counted, never waited for
forever.

A source started again (``on_error: restart``) numbers its frames on from where the crashed
start stopped as far as it can tell; on another host (Ray) the numbers may overlap the old ones
or skip some. Frames carry their source start's ``meta["source_incarnation"]``: at a newer one
the next stage releases what it holds of the old start and goes on from the new start's
number, and frames of the old start that come later are dropped as late. Frames the old start
sent that never arrived are counted lost by the supervisor at the end
(:func:`~vidaffect.runtime.metrics.count_in_transit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vidaffect.frames import Frame

Item = tuple[dict[str, Any], Frame | None]


@dataclass
class _StreamState:
    next_seq: int = 0
    pending: dict[int, Item] = field(default_factory=dict)
    eos_seen: int = 0
    changes: list[Any] = field(default_factory=list)  # label changes at the end, from every producer
    total: int = 0
    done: bool = False
    seen: bool = False
    incarnation: int = 0  # the source start whose frames are being ordered


class Reorderer:
    """Orders frames per stream and merges EOS from ``producers`` upstream workers.

    Args:
        producers: number of upstream processes that each send one EOS per stream.
        window: maximum frames held per stream before skipping a missing one.
        ordered: False for a worker of a fanned-out stage (it sees only some frames): frames
            pass straight through and only EOS is merged.
        resync: a restarted worker: each stream starts at the first sequence number seen
            (earlier frames were handled, or lost, by the previous process).
    """

    def __init__(self, producers: int, window: int = 64, ordered: bool = True, resync: bool = False) -> None:
        self.producers, self.window, self.ordered, self.resync = producers, window, ordered, resync
        self.streams: dict[str, _StreamState] = {}
        self.lost = 0
        self.late = 0

    def push(self, header: dict[str, Any], frame: Frame | None) -> list[Item]:
        """Add a received message; return the items now ready, in order (EOS last)."""
        st = self.streams.setdefault(header["stream"], _StreamState())
        if st.done:
            self.late += frame is not None  # frames only: what the stage counted in
            return []
        if frame is None:
            st.eos_seen += 1
            st.total = max(st.total, int(header["seq"]))
            st.changes += header["meta"].get("changes") or []
            if st.eos_seen < self.producers:
                return []
            out = self._drain(st, final=True)
            st.done = True
            meta = header["meta"] | ({"changes": st.changes} if st.changes else {})
            return out + [(header | {"seq": st.total, "meta": meta}, None)]
        if not self.ordered:
            return [(header, frame)]
        restarted: list[Item] = []
        incarnation = frame.meta.get("source_incarnation")
        if isinstance(incarnation, int):
            if incarnation < st.incarnation:  # from a source start that has been replaced
                self.late += 1
                return []
            if incarnation > st.incarnation and st.seen:
                restarted = self._drain(st, final=True)  # the old start's frames: none will follow
                st.next_seq = frame.seq
            st.incarnation = incarnation
        if self.resync and not st.seen:
            st.next_seq = frame.seq
        st.seen = True
        if frame.seq < st.next_seq:
            self.late += 1
            return []
        st.pending[frame.seq] = (header, frame)
        out = restarted + self._drain(st, final=False)
        while len(st.pending) > self.window:
            skip_to = min(st.pending)
            self.lost += skip_to - st.next_seq
            st.next_seq = skip_to
            out += self._drain(st, final=False)
        return out

    def _drain(self, st: _StreamState, final: bool) -> list[Item]:
        out = []
        while st.pending:
            if st.next_seq in st.pending:
                out.append(st.pending.pop(st.next_seq))
                st.next_seq += 1
            elif final:
                skip_to = min(st.pending)
                self.lost += skip_to - st.next_seq
                st.next_seq = skip_to
            else:
                break
        if final and st.next_seq < st.total and self.ordered and (st.seen or not self.resync):
            self.lost += st.total - st.next_seq
            st.next_seq = st.total
        return out

    def force_end(self, totals: dict[str, int]) -> list[Item]:
        """End every unfinished stream as if all producers had sent EOS (EOS lost in a crash).

        Args:
            totals: frames each stream emitted (the source's EOS ``seq``).
        """
        out: list[Item] = []
        for stream, total in totals.items():
            st = self.streams.setdefault(stream, _StreamState())
            if st.done:
                continue
            st.eos_seen = self.producers - 1
            header = {
                "v": 1,
                "kind": "eos",
                "stream": stream,
                "seq": total,
                "ts_ns": 0,
                "pts_ms": None,
                "bufs": [],
                "meta": {"eos_lost": True},
            }
            out += self.push(header, None)
        return out

    def all_done(self, streams: list[str]) -> bool:
        return all(s in self.streams and self.streams[s].done for s in streams)
