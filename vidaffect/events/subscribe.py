"""Subscribing to vidaffect's JSON events over ZeroMQ (what `vidaffect events` does)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import zmq
import zmq.auth


def iter_events(
    endpoint: str,
    topic: str = "",
    timeout_ms: int | None = None,
    curve_secret_key: str | None = None,
    curve_server_key: str | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(stream_id, event)`` from a ``zmq_events`` sink's PUB endpoint.

    Args:
        endpoint: e.g. ``tcp://127.0.0.1:5560`` (connect side).
        topic: the stream id to receive (matched whole: ``cam1`` does not receive ``cam10``,
            although ZeroMQ subscriptions match prefixes); ``""`` receives every stream.
        timeout_ms: stop when nothing arrives for this long (None: wait forever).
        curve_secret_key, curve_server_key: for a sink with CurveZMQ on, this subscriber's
            secret key file and the server's public key file (``vidaffect keys``).

    Each message is two ZeroMQ frames, ``[stream id (UTF-8), JSON object (UTF-8)]``; messages
    that are not are skipped. This is a generator: nothing
    connects, and none of the errors below is raised, before the first ``next()``.

    Raises:
        OSError: a key file cannot be read.
        ValueError: only one of the two key files is given, the secret key file holds no
            secret key, or a key file is malformed.
    """
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if curve_secret_key is not None or curve_server_key is not None:
        if curve_secret_key is None or curve_server_key is None:
            raise ValueError("CurveZMQ needs both curve_secret_key and curve_server_key")
        public, secret = zmq.auth.load_certificate(curve_secret_key)
        if secret is None:
            raise ValueError(
                f"{curve_secret_key} holds no secret key (give the NAME.key_secret file "
                "that `vidaffect keys` wrote)"
            )
        sock.curve_secretkey, sock.curve_publickey = secret, public
        sock.curve_serverkey, _ = zmq.auth.load_certificate(curve_server_key)
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
                stream, event = parts[0].decode(), json.loads(parts[1])
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(event, dict) and (not topic or stream == topic):
                yield stream, event
    finally:
        sock.close()
