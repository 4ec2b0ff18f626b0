"""The ``zmq_events`` sink: JSON events on a ZeroMQ PUB socket, topic = stream id.

Messages are two parts ``[topic, json]``: the topic is the frame's stream id (UTF-8), the
second part an event of ``vidaffect/events/schemas/event.v5.json`` (compact UTF-8 JSON): a
``frame`` event per frame and, with tracking, ``change`` events when a track's smoothed
label changes or the track ends.
Subscribers filter by stream with ``sock.setsockopt(zmq.SUBSCRIBE, b"cam0")`` (``b""``
for all streams). ZeroMQ matches topics by prefix, so ``b"cam1"`` also receives
``cam10``; compare the first part exactly when that matters. ``vidaffect events`` (see
:mod:`vidaffect.events.subscribe`) is a ready-made subscriber.

The send high-water mark bounds what is queued for each subscriber: beyond it PUB drops
messages for that subscriber, so a subscriber that stops reading never slows the
pipeline. Subscribers that connect late miss earlier events (PUB/SUB has no replay).

Exposure: the socket binds to loopback unless ``endpoint`` names another address, and another
address is refused without CurveZMQ unless ``insecure: true`` says so. For remote
subscribers, switch on CurveZMQ (RFC 26/CurveZMQ; encryption plus authentication):
``curve_secret_key`` is the server's secret key file and ``curve_authorized_keys`` a folder
of the public key files of the subscribers allowed in (both as written by
``vidaffect keys``); any other subscriber is refused by the ZAP handler.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
from pydantic import Field, model_validator

from vidaffect.api import PluginConfig, Sink
from vidaffect.errors import SinkError
from vidaffect.events.build import (
    build_frame_event,
    build_outage_event,
    encode_event,
    frame_side_events,
    stream_end_change_events,
)
from vidaffect.frames import Frame
from vidaffect.runtime.addresses import endpoint_is_local
from vidaffect.runtime.security import holds_secret_key
from vidaffect_plugins.sinks.pub_socket import bind_pub, check_bindable

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator


class ZmqEventsSink(Sink):
    """Publishes JSON events on a bound PUB socket (topic = stream id).

    Attributes:
        endpoint: the endpoint actually bound (a ``*`` port resolved), set by ``open``.
        events_sent: events handed to ZeroMQ.
    """

    name = "zmq_events"
    needs_pixels = False
    summary = "JSON events on a ZeroMQ PUB socket (topic = stream id)"

    class Config(PluginConfig):
        endpoint: str = Field(
            "tcp://127.0.0.1:5560",
            min_length=1,
            description="address to bind (loopback by default; 'tcp://*:5560' "
            "for all interfaces, port '*' for any free port)",
        )
        hwm: int = Field(
            1000,
            ge=1,
            le=10_000_000,
            description="send high-water mark per subscriber (messages); "
            "beyond it events are dropped for that subscriber",
        )
        linger_ms: int = Field(
            1000, ge=0, le=60_000, description="time close() waits to deliver queued events (ms)"
        )
        curve_secret_key: str | None = Field(
            None,
            description="CurveZMQ: this server's secret key file (vidaffect keys); "
            "subscribers then need its public key and their own key pair",
        )
        curve_authorized_keys: str | None = Field(
            None, description="CurveZMQ: folder of the public key files of allowed subscribers"
        )
        insecure: bool = Field(
            False,
            description="publish beyond loopback without CurveZMQ (anyone on the network "
            "can then read the events)",
        )

        @model_validator(mode="after")
        def _curve_pair(self) -> ZmqEventsSink.Config:
            if (self.curve_secret_key is None) != (self.curve_authorized_keys is None):
                raise ValueError("curve_secret_key and curve_authorized_keys go together")
            if self.curve_secret_key is not None and not Path(self.curve_secret_key).is_file():
                raise ValueError(f"curve_secret_key: no such file: {self.curve_secret_key}")
            if self.curve_authorized_keys is not None and not Path(self.curve_authorized_keys).is_dir():
                raise ValueError(f"curve_authorized_keys: no such folder: {self.curve_authorized_keys}")
            if self.curve_secret_key is not None and not holds_secret_key(self.curve_secret_key):
                raise ValueError(
                    f"curve_secret_key: {self.curve_secret_key} holds no secret key "
                    "(give the NAME.key_secret file that `vidaffect keys` wrote)"
                )
            if self.curve_secret_key is None and not self.insecure and not endpoint_is_local(self.endpoint):
                raise ValueError(
                    f"endpoint: {self.endpoint} lets other hosts subscribe, and CurveZMQ is off: "
                    "anyone on the network could read the events. Set curve_secret_key and "
                    "curve_authorized_keys (vidaffect keys), or insecure: true to publish "
                    "in the clear"
                )
            return self

    config: Config
    events_sent: int = 0

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Before any stage starts: the endpoint can be bound (the port is free), by binding
        and closing a socket.

        Raises:
            SinkError: the address is in use or malformed.
        """
        check_bindable("zmq_events", config.endpoint)  # type: ignore[attr-defined]

    def open(self) -> None:
        """Create the PUB socket (in this process, on ``zmq.Context.instance()``) and bind.

        Raises:
            SinkError: the endpoint cannot be bound (address in use, malformed endpoint).
        """
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, self.config.hwm)
        self.sock.setsockopt(zmq.LINGER, self.config.linger_ms)
        self.auth: ThreadAuthenticator | None = None
        if self.config.curve_secret_key is not None:
            self._enable_curve(ctx)
        try:
            self.endpoint = bind_pub("zmq_events", self.sock, self.config.endpoint)
        except SinkError:
            del self.sock
            raise
        self.events_sent = 0

    def _enable_curve(self, ctx: zmq.Context) -> None:
        """CurveZMQ server with a ZAP handler that admits only the authorized public keys."""
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        try:
            public, secret = zmq.auth.load_certificate(str(self.config.curve_secret_key))
        except (OSError, ValueError) as exc:
            self.sock.close(0)
            raise SinkError(f"zmq_events sink: cannot read curve key: {exc}") from None
        if secret is None:
            self.sock.close(0)
            raise SinkError(f"zmq_events sink: {self.config.curve_secret_key} holds no secret key")
        auth = self.auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(self.config.curve_authorized_keys))
        self.sock.curve_secretkey = secret
        self.sock.curve_publickey = public
        self.sock.curve_server = True

    def write(self, frame: Frame) -> None:
        """Publish ``[stream id, event JSON]`` for the frame and each of its label changes;
        never blocks (PUB drops at the high-water mark)."""
        topic = frame.stream.encode()
        self.sock.send_multipart([topic, encode_event(build_frame_event(frame))])
        self.events_sent += 1
        for event in frame_side_events(frame):
            self.sock.send_multipart([topic, encode_event(event)])
            self.events_sent += 1

    def outage(self, stream: str, info: dict[str, Any]) -> None:
        """Publish an ``outage`` event (the stream is down)."""
        self.sock.send_multipart([stream.encode(), encode_event(build_outage_event(stream, info))])
        self.events_sent += 1

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        """Publish the ``change`` events ending the stream's open tracks."""
        for event in stream_end_change_events(stream, info):
            self.sock.send_multipart([stream.encode(), encode_event(event)])
            self.events_sent += 1

    def close(self) -> None:
        """Close the socket, waiting up to ``linger_ms`` for queued events to go out."""
        sock = getattr(self, "sock", None)
        if sock is not None:
            sock.close(self.config.linger_ms)
        auth = getattr(self, "auth", None)
        if auth is not None:
            auth.stop()
