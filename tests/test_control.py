"""The control channel's typed messages: a round trip for each kind, and what is refused."""

from __future__ import annotations

import msgpack
import pytest

from vidaffect.runtime.control import (
    CONTROL_VERSION,
    ControlError,
    Release,
    RunState,
    StateMessage,
    Stats,
    UpstreamEnded,
    Wiring,
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
        Wiring(3, {"detector": ["tcp://10.0.0.5:41234"], "sink-0-jsonl": ["ipc:///tmp/x/s.sock"]}),
    ],
)
def test_round_trip(msg: object) -> None:
    assert decode_control(encode_control(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"go", "not msgpack|another version"),
        (msgpack.packb({"v": CONTROL_VERSION + 1, "kind": "state", "state": "go"}), "another version"),
        (msgpack.packb({"v": CONTROL_VERSION, "kind": "state", "state": "fly"}), "malformed"),
        (msgpack.packb({"v": CONTROL_VERSION, "kind": "release"}), "malformed"),
        (
            msgpack.packb(
                {"v": CONTROL_VERSION, "kind": "upstream_ended", "stage": "x", "totals": {"cam0": "many"}}
            ),
            "malformed",
        ),
        (msgpack.packb({"v": CONTROL_VERSION, "kind": "reboot"}), "unknown control message kind"),
        (msgpack.packb({"v": CONTROL_VERSION, "kind": "wiring", "version": 1, "inputs": [1]}), "malformed"),
    ],
)
def test_malformed_messages_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(ControlError, match=why):
        decode_control(data)
