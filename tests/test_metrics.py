"""The run's frame accounting after the fact: frames in transit and the counters of a worker
that was killed between two reports."""

from __future__ import annotations

import math
from typing import Any

from vidaffect.runtime.metrics import (
    REPORT_EVERY_S,
    StageMetrics,
    count_in_transit,
    in_hand,
    merge,
    next_seq_estimate,
    reconcile_killed,
)

DOWN = {
    "source": {"detector"},
    "detector": {"classifier"},
    "classifier": {"sink-a", "sink-b"},
    "sink-a": set(),
    "sink-b": set(),
}


def counters(frames_in: int, frames_out: int, dropped: int = 0, lost: int = 0) -> dict[str, Any]:
    return {"frames_in": frames_in, "frames_out": frames_out, "dropped": dropped, "lost": lost}


def test_frames_in_sockets_are_lost_at_the_stage_that_never_got_them() -> None:
    stages = {
        "source": counters(100, 100),
        "detector": counters(97, 97),
        "classifier": counters(97, 95, dropped=2),
        "sink-a": counters(95, 95),
        "sink-b": counters(93, 93),
    }
    count_in_transit(stages, DOWN)
    assert stages["detector"]["lost"] == 3 and stages["sink-b"]["lost"] == 2 and stages["sink-a"]["lost"] == 0


def test_a_killed_worker_s_stale_counters_follow_what_its_consumers_saw() -> None:
    # the classifier reported 60 in, 58 out, then passed on 6 more frames, received 3 more
    # that it never passed on, and was killed: the supervisor counted 2 in hand as dropped
    classifier = counters(60, 58)
    classifier["dropped"] += in_hand(60, 58, 0)
    stages = {
        "source": counters(100, 100),
        "detector": counters(100, 100),
        "classifier": classifier,
        # the sinks got the 6 and found the 3 (and the 2 it held) missing in the sequence
        "sink-a": counters(64, 64, lost=0),
        "sink-b": counters(64, 64, lost=0),
    }
    reconcile_killed(stages, DOWN, {"classifier"})
    count_in_transit(stages, DOWN)
    c = stages["classifier"]
    assert c["frames_out"] == 64 and c["dropped"] == 0 and c["frames_in"] == 64
    assert c["frames_in"] == c["frames_out"] + c["dropped"]
    assert c["lost"] == 36  # sent by the detector, never seen by any classifier incarnation's report
    assert stages["sink-a"]["lost"] == 0


def test_a_killed_worker_whose_consumers_saw_less_keeps_its_counters() -> None:
    stages = {"detector": counters(50, 40, dropped=10), "classifier": counters(38, 38, lost=2)}
    reconcile_killed(stages, {"detector": {"classifier"}, "classifier": set()}, {"detector"})
    assert stages["detector"] == counters(50, 40, dropped=10)


def test_a_source_reports_its_next_seq_and_other_stages_do_not() -> None:
    source, detector = StageMetrics(next_seq=120), StageMetrics()
    assert source.snapshot()["next_seq"] == 120 and "next_seq" not in detector.snapshot()
    later = StageMetrics(next_seq=300).snapshot()
    assert merge([source.snapshot(), later])["next_seq"] == 300  # the highest, not a sum


def test_the_estimate_for_a_restarted_source_is_above_what_it_can_have_sent() -> None:
    """25 frames/s, last report 2 s before the restart: up to 50 more frames were sent (the
    crash came at most 2 s after the report); the estimate leaves room for twice that, plus
    one report interval."""
    first = {"next_seq": 10, "frames_out": 10, "wall_s": 0.4}
    last = {"next_seq": 500, "frames_out": 490, "wall_s": 19.6}  # 25 frames/s
    got = next_seq_estimate([(first, 50.0), (last, 98.0)], now=100.0)
    assert got == 500 + math.ceil(25 * (2 * 2.0 + REPORT_EVERY_S))
    assert next_seq_estimate([], now=5.0) == 0
    assert next_seq_estimate([({"frames_in": 3}, 1.0)], now=5.0) == 0  # not a source
