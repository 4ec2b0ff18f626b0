"""The run's frame accounting after the fact: frames in transit and the counters of a worker
that was killed between two reports."""

from __future__ import annotations

from typing import Any

from vidaffect.runtime.metrics import count_in_transit, in_hand, reconcile_killed

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
