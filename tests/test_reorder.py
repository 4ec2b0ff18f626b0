"""Reordering after fan-out: order restored, EOS merged, gaps counted as lost."""

from __future__ import annotations

import numpy as np

from vidaffect.frames import Frame
from vidaffect.runtime.reorder import Reorderer

IMG = np.zeros((2, 2, 3), np.uint8)


def frame(seq: int, stream: str = "s", incarnation: int | None = None) -> tuple[dict, Frame]:
    meta = {} if incarnation is None else {"source_incarnation": incarnation}
    return {"stream": stream, "seq": seq, "kind": "frame"}, Frame(IMG, stream, seq, 0, meta=meta)


def eos(total: int, stream: str = "s") -> tuple[dict, None]:
    return {"stream": stream, "seq": total, "kind": "eos", "meta": {}}, None


def seqs(items: list) -> list:
    return [f.seq if f is not None else "EOS" for _, f in items]


def test_out_of_order_frames_come_out_in_order() -> None:
    r = Reorderer(producers=2)
    out = []
    for s in [1, 0, 3, 2, 5, 4]:
        out += r.push(*frame(s))
    out += r.push(*eos(6))
    assert seqs(out) == [0, 1, 2, 3, 4, 5]
    out = r.push(*eos(6))
    assert seqs(out) == ["EOS"]
    assert r.lost == 0 and r.all_done(["s"])


def test_missing_frame_skipped_when_window_full() -> None:
    r = Reorderer(producers=1, window=3)
    out = r.push(*frame(0))
    for s in [2, 3, 4, 5]:
        out += r.push(*frame(s))
    assert seqs(out) == [0, 2, 3, 4, 5]
    assert r.lost == 1
    assert r.push(*frame(1)) == [] and r.late == 1


def test_eos_flushes_pending_and_counts_tail_gap() -> None:
    r = Reorderer(producers=1)
    out = r.push(*frame(0)) + r.push(*frame(2)) + r.push(*eos(5))
    assert seqs(out) == [0, 2, "EOS"]
    assert r.lost == 3  # seq 1, 3 and 4 never arrived


def test_unordered_mode_passes_through_and_merges_eos() -> None:
    r = Reorderer(producers=2, ordered=False)
    out = r.push(*frame(3)) + r.push(*frame(1)) + r.push(*eos(4)) + r.push(*eos(4))
    assert seqs(out) == [3, 1, "EOS"]


def test_streams_are_independent() -> None:
    r = Reorderer(producers=1)
    out = r.push(*frame(1, "a")) + r.push(*frame(0, "b")) + r.push(*frame(0, "a"))
    assert [(f.stream, f.seq) for _, f in out] == [("b", 0), ("a", 0), ("a", 1)]
    r.push(*eos(2, "a"))
    assert r.all_done(["a"]) and not r.all_done(["a", "b"])


def test_a_source_started_again_lower_is_taken_at_once_and_its_old_frames_are_late() -> None:
    """A source restarted on another host without its sequence file numbers from below the
    old numbers: its frames go on at once, instead of all being dropped as late."""
    r = Reorderer(producers=1, window=4)
    out = r.push(*frame(0, incarnation=1)) + r.push(*frame(1, incarnation=1))
    out += r.push(*frame(3, incarnation=1))  # 2 still in flight when the source's host went
    assert seqs(out) == [0, 1]
    out = r.push(*frame(0, incarnation=5)) + r.push(*frame(1, incarnation=5))
    assert seqs(out) == [3, 0, 1] and r.lost == 1  # what the old start left is released
    assert r.push(*frame(2, incarnation=1)) == [] and r.late == 1  # the old start's straggler
    out = r.push(*frame(2, incarnation=5)) + r.push(*eos(3))
    assert seqs(out) == [2, "EOS"] and r.lost == 1 and r.all_done(["s"])


def test_a_source_started_again_higher_goes_on_without_waiting_for_the_gap() -> None:
    r = Reorderer(producers=1, window=64)
    out = r.push(*frame(0, incarnation=1)) + r.push(*frame(1, incarnation=1))
    out += r.push(*frame(40, incarnation=2)) + r.push(*frame(41, incarnation=2))
    assert seqs(out) == [0, 1, 40, 41]  # numbers 2-39 may never have been frames: not counted here
    assert r.lost == 0 and r.late == 0
