"""The control channel's typed messages: a round trip for each kind, and what is refused."""

from __future__ import annotations

import msgpack
import pytest

from vidaffect.runtime.control import (
    ControlError,
    Release,
    RunState,
    StateMessage,
    Stats,
    UpstreamEnded,
    decode_control,
    encode_control,
)


@pytest.mark.parametrize(
    "msg",
    [
        StateMessage(RunState.GO),
        StateMessage(RunState.ABORT),
        Release("sink-0-jsonl"),
        UpstreamEnded("classifier", {"cam0": 120, "door": 7}),
        Stats({"detector": {"frames_in": 3, "latency_p50_ms": 12.5}}),
    ],
)
def test_round_trip(msg: object) -> None:
    assert decode_control(encode_control(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"go", "not msgpack|another version"),
        (msgpack.packb({"v": 2, "kind": "state", "state": "go"}), "another version"),
        (msgpack.packb({"v": 1, "kind": "state", "state": "fly"}), "malformed"),
        (msgpack.packb({"v": 1, "kind": "release"}), "malformed"),
        (
            msgpack.packb({"v": 1, "kind": "upstream_ended", "stage": "x", "totals": {"cam0": "many"}}),
            "malformed",
        ),
        (msgpack.packb({"v": 1, "kind": "reboot"}), "unknown control message kind"),
    ],
)
def test_malformed_messages_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(ControlError, match=why):
        decode_control(data)
