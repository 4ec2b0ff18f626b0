"""Subscribing to vidaffect's JSON events over ZeroMQ (what `vidaffect events` does)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import zmq


def iter_events(endpoint: str, topic: str = "", timeout_ms: int | None = None
                ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(stream_id, event)`` from a ``zmq_events`` sink's PUB endpoint.

    Args:
        endpoint: e.g. ``tcp://127.0.0.1:5560`` (connect side).
        topic: stream id prefix to subscribe to; ``""`` receives every stream.
        timeout_ms: stop when nothing arrives for this long (None: wait forever).

    Messages that are not ``[topic, JSON]`` are skipped.
    """
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    sock.connect(endpoint)
    try:
        while True:
            if timeout_ms is not None and not sock.poll(timeout_ms):
                return
            parts = sock.recv_multipart()
            if len(parts) != 2:
                continue
            try:
                yield parts[0].decode(), json.loads(parts[1])
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
    finally:
        sock.close()
