"""The supervisor's control channel to its stages: run states and typed, versioned messages.

Each message is one msgpack map ``{"v": CONTROL_VERSION, "kind": ..., ...}`` on the control
PUB socket (no pickle). A message that does not decode is dropped by the stage and counted as
malformed (:class:`ControlError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import msgpack

CONTROL_VERSION = 2


class RunState(str, Enum):
    """Where a run is: stages ``STARTING`` (loading their plugins), ``GO`` (sources read),
    ``STOP`` (sources end their streams; the pipeline drains), ``ABORT`` (every stage stops at
    once). The supervisor repeats the state every 0.2 s from ``GO`` on."""

    STARTING = "starting"
    GO = "go"
    STOP = "stop"
    ABORT = "abort"


@dataclass(frozen=True)
class StateMessage:
    """The run's state."""

    state: RunState


@dataclass(frozen=True)
class Release:
    """Every stage ``stage`` feeds is done: it may close its outputs and exit."""

    stage: str


@dataclass(frozen=True)
class UpstreamEnded:
    """Every producer of ``stage`` has exited; ``totals`` are the frames each stream emitted (an
    EOS still missing was lost with a crashed worker)."""

    stage: str
    totals: dict[str, int]


@dataclass(frozen=True)
class Stats:
    """The run's per-stage counters, for sinks that show them."""

    stages: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Wiring:
    """Where every stage's workers listen, sent once they have all bound (two-phase start):
    ``inputs`` maps a stage name to the input endpoint of each of its workers, in worker order
    (``tcp://HOST:PORT`` or ``ipc://PATH``). A stage connects its outputs to the stages it
    feeds from it, and reconnects when a later ``version`` moves an endpoint (a worker
    restarted on another node)."""

    version: int
    inputs: dict[str, list[str]]


ControlMessage = StateMessage | Release | UpstreamEnded | Stats | Wiring


class ControlError(ValueError):
    """A control message that is not msgpack, has another version or kind, or lacks a field."""


def encode_control(msg: ControlMessage) -> bytes:
    """One control message as msgpack bytes."""
    if isinstance(msg, StateMessage):
        body: dict[str, Any] = {"kind": "state", "state": msg.state.value}
    elif isinstance(msg, Release):
        body = {"kind": "release", "stage": msg.stage}
    elif isinstance(msg, UpstreamEnded):
        body = {"kind": "upstream_ended", "stage": msg.stage, "totals": msg.totals}
    elif isinstance(msg, Wiring):
        body = {"kind": "wiring", "version": msg.version, "inputs": msg.inputs}
    else:
        body = {"kind": "stats", "stages": msg.stages}
    return bytes(msgpack.packb({"v": CONTROL_VERSION, **body}, use_bin_type=True))


def decode_control(data: bytes) -> ControlMessage:
    """The message in ``data``.

    Raises:
        ControlError: it is not a valid control message of this version.
    """
    try:
        m = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise ControlError(f"control message is not msgpack: {exc}") from None
    if not isinstance(m, dict) or m.get("v") != CONTROL_VERSION:
        raise ControlError("control message of another version, or not a map")
    try:
        kind = m["kind"]
        if kind == "state":
            return StateMessage(RunState(m["state"]))
        if kind == "release":
            return Release(str(m["stage"]))
        if kind == "upstream_ended":
            return UpstreamEnded(str(m["stage"]), {str(k): int(v) for k, v in dict(m["totals"]).items()})
        if kind == "stats":
            return Stats(dict(m["stages"]))
        if kind == "wiring":
            inputs = {str(k): [str(ep) for ep in v] for k, v in dict(m["inputs"]).items()}
            return Wiring(int(m["version"]), inputs)
    except (KeyError, ValueError, TypeError) as exc:
        raise ControlError(f"control message {kind!r} is malformed: {exc}") from None
    raise ControlError(f"unknown control message kind {kind!r}")
