"""The ``zmq_events`` sink: JSON events on a ZeroMQ PUB socket, topic = stream id.

Subscribers filter by stream with ``SUBSCRIBE`` on the topic (``b""`` for all streams) and
receive two-part messages ``[topic, json]``. The send high-water mark bounds what is queued
for a slow subscriber: beyond it PUB drops messages for that subscriber, so a subscriber that
stops reading never slows the pipeline.
"""

from __future__ import annotations

import zmq
from pydantic import Field

from vidaffect.api import PluginConfig, Sink
from vidaffect.errors import VidaffectError
from vidaffect.events import build_frame_event, encode_event
from vidaffect.frames import Frame


class ZmqEventsSink(Sink):
    """Publishes one JSON event per frame (schema ``vidaffect/schemas/event.v1.json``)."""

    name = "zmq_events"
    summary = "JSON events on a ZeroMQ PUB socket (topic = stream id)"

    class Config(PluginConfig):
        endpoint: str = Field("tcp://127.0.0.1:5560", description="address to bind (loopback by default)")
        hwm: int = Field(1000, ge=1, description="send high-water mark per subscriber (messages)")
        linger_ms: int = Field(1000, ge=0, description="time to deliver queued events at close")

    config: Config

    def open(self) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, self.config.hwm)
        self.sock.setsockopt(zmq.LINGER, self.config.linger_ms)
        try:
            self.sock.bind(self.config.endpoint)
        except zmq.ZMQError as exc:
            self.sock.close(0)
            raise VidaffectError(f"zmq_events sink: cannot bind {self.config.endpoint}: {exc}") from None
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def write(self, frame: Frame) -> None:
        self.sock.send_multipart([frame.stream.encode(), encode_event(build_frame_event(frame))])

    def close(self) -> None:
        if hasattr(self, "sock"):
            self.sock.close()
