"""The ``mqtt`` sink: results for the programs that speak MQTT (Home Assistant, Node-RED,
dashboards, alerting), with paho-mqtt 2.x.

Retained state per stream and per track (a subscriber that connects late sees the current
faces, mood and tracks at once), events as they happen (not retained), availability with a
last will; the topic table is in :mod:`vidaffect_plugins.sinks.mqtt_state`.

While the broker is away the pipeline runs on: paho's network thread reconnects with backoff
(1 s doubling to 30 s). Events published meanwhile are dropped and counted (``events_dropped``):
an event is about a moment, and a burst of stale ones after the outage would be worse than none;
the retained state is kept in memory and published again, all of it, on reconnect, so the
broker holds the current state at once. paho's own queue of unacknowledged QoS 1/2 messages is
bounded too (:data:`MAX_QUEUED`); what overflows it is dropped and counted.

Retained state goes at QoS 0 and events at the configured ``qos``: what matters of a state topic
is its newest value, which every reconnect publishes again, whereas a QoS 1 retry of an older
value (one still unacknowledged when the connection broke, which paho re-sends after the
reconnect) would overwrite the newer one on the broker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Literal

from pydantic import Field, field_validator

from vidaffect.api import PluginConfig, Sink
from vidaffect.errors import PluginError, SinkError
from vidaffect.events.build import (
    build_frame_event,
    build_outage_event,
    encode_event,
    frame_side_events,
    stream_end_change_events,
)
from vidaffect.frames import Frame
from vidaffect_plugins.sinks.mqtt_state import MqttState, to_json

log = logging.getLogger(__name__)

MAX_QUEUED = 1000
"""Messages paho may hold for the broker (unacknowledged QoS 1/2, or not yet written)."""


class MqttSink(Sink):
    """Publishes retained state and events to an MQTT broker (see the module docstring).

    Attributes:
        events_sent, events_dropped: events published, and dropped while the broker was away
            or paho's queue was full (also reported as the stage's plugin counters).
    """

    name = "mqtt"
    summary = "MQTT: retained per-stream and per-track state, change events, availability (paho-mqtt)"
    needs_pixels = False

    class Config(PluginConfig):
        host: str = Field("127.0.0.1", description="broker host")
        port: int = Field(1883, ge=1, le=65535, description="broker port (8883 is usual with TLS)")
        client_id: str | None = Field(None, description="MQTT client id (default: vidaffect-HOST-PID)")
        username_env: str = Field(
            "VIDAFFECT_MQTT_USERNAME",
            description="environment variable holding the user name (unset: anonymous)",
        )
        password_env: str = Field(
            "VIDAFFECT_MQTT_PASSWORD", description="environment variable holding the password (never logged)"
        )
        tls: bool = Field(False, description="connect with TLS (the system's CAs, or ca_file)")
        ca_file: str | None = Field(None, description="TLS: CA certificate file of the broker (PEM)")
        topic_prefix: str = Field("vidaffect", min_length=1, description="first level of every topic")
        qos: Literal[0, 1, 2] = Field(1, description="QoS of events (retained state and frame events: 0)")
        keepalive_s: int = Field(
            30, ge=1, le=3600, description="MQTT keepalive; the last will fires after 1.5x"
        )
        connect_timeout_s: float = Field(
            5.0, gt=0, le=120, description="first connection: give up after this"
        )
        frame_events: bool = Field(False, description="also publish every frame event on PREFIX/S/frames")
        frame_events_hz: float = Field(
            2.0, gt=0, le=100, description="frame events: at most this many per second"
        )
        discovery: bool = Field(False, description="publish Home Assistant MQTT discovery for each stream")
        discovery_prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix")

        @field_validator("topic_prefix")
        @classmethod
        def _no_wildcards(cls, v: str) -> str:
            if any(c in v for c in "+#\0") or v.startswith("/") or v.endswith("/"):
                raise ValueError("a topic prefix has no '+', '#' or NUL, and no leading or trailing '/'")
            return v

    config: Config

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Reach the broker over TCP before any stage starts.

        Raises:
            PluginError: the broker's host:port does not accept connections.
        """
        assert isinstance(config, cls.Config)
        try:
            socket.create_connection((config.host, config.port), timeout=config.connect_timeout_s).close()
        except OSError as exc:
            raise PluginError(
                f"mqtt sink: cannot reach the broker at {config.host}:{config.port}: {exc}"
            ) from None

    def open(self) -> None:
        """Connect (waiting for the broker's answer) and publish ``available: online``.

        Raises:
            SinkError: the broker cannot be reached or refuses the connection (the reason,
                never the password).
        """
        import paho.mqtt.client as mqtt

        cfg = self.config
        self.state = MqttState(cfg.topic_prefix)
        self.available = f"{cfg.topic_prefix}/available"
        self.events_sent = self.events_dropped = 0
        self._next_frame_event: dict[str, float] = {}
        self._connected = threading.Event()
        self._lock = threading.Lock()  # the state: updated here, read by paho's thread on reconnect
        self._refused: str | None = None
        self._closing = False
        client_id = cfg.client_id or f"vidaffect-{socket.gethostname()}-{os.getpid()}"
        self._taken = mqtt.MQTT_ERR_SUCCESS  # publish()'s code for a message paho took
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        user = os.environ.get(cfg.username_env)
        if user:
            client.username_pw_set(user, os.environ.get(cfg.password_env))
        if cfg.tls:
            client.tls_set(ca_certs=cfg.ca_file)
        client.will_set(self.available, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(MAX_QUEUED)
        client.connect_timeout = cfg.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self.client = client
        where = f"{cfg.host}:{cfg.port}"
        try:
            client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        except (OSError, ValueError) as exc:
            raise SinkError(f"mqtt sink: cannot connect to the broker at {where}: {exc}") from None
        client.loop_start()
        if not self._connected.wait(cfg.connect_timeout_s) or self._refused:
            client.loop_stop()
            why = self._refused or f"no answer within {cfg.connect_timeout_s:g} s"
            raise SinkError(f"mqtt sink: the broker at {where} refused the connection: {why}")

    # -- paho callbacks (its network thread) -----------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()
            return
        log.info("mqtt sink: connected to %s:%d", self.config.host, self.config.port)
        self._publish(self.available, b"online", retain=True, qos=0)
        with self._lock:
            retained = self._discovery() + self.state.retained()
        for topic, payload in retained:
            self._publish(topic, payload, retain=True, qos=0)
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self._connected.is_set() and not self._closing:
            log.warning(
                "mqtt sink: lost the broker at %s:%d (%s); reconnecting",
                self.config.host,
                self.config.port,
                reason,
            )
        self._connected.clear()

    # -- publishing ------------------------------------------------------------------------
    def _publish(self, topic: str, payload: bytes, retain: bool = False, qos: int | None = None) -> bool:
        """Hand one message to paho; False when it was not taken (no broker, queue full)."""
        info = self.client.publish(topic, payload, qos=self.config.qos if qos is None else qos, retain=retain)
        return bool(info.rc == self._taken)

    def _retain(self, pairs: list[tuple[str, bytes]]) -> None:
        """Publish retained state if connected; otherwise it waits in :attr:`state` for the
        reconnect, which publishes the newest value of every topic."""
        if self._connected.is_set():
            for topic, payload in pairs:
                self._publish(topic, payload, retain=True, qos=0)

    def _event(self, stream: str, event: dict[str, Any], sub: str = "events", qos: int | None = None) -> None:
        if self._connected.is_set() and self._publish(
            self.state.topic(stream, sub), encode_event(event), qos=qos
        ):
            self.events_sent += 1
        else:
            self.events_dropped += 1

    def _discovery(self) -> list[tuple[str, bytes]]:
        """Home Assistant MQTT discovery: a mood sensor and a faces sensor per stream."""
        if not self.config.discovery:
            return []
        cfg, out = self.config, []
        for stream in self.streams or list(self.state.streams):
            uid = f"vidaffect_{cfg.topic_prefix}_{stream}".replace("/", "_").replace(".", "_")
            device = {"identifiers": [uid], "name": f"vidaffect {stream}", "manufacturer": "vidaffect"}
            common = {"availability_topic": self.available, "device": device}
            mood = {
                **common,
                "name": "mood",
                "unique_id": f"{uid}_mood",
                "state_topic": self.state.topic(stream, "mood"),
                "value_template": "{{ value_json.label }}",
                "json_attributes_topic": self.state.topic(stream, "mood"),
                "icon": "mdi:emoticon-outline",
            }
            faces = {
                **common,
                "name": "faces",
                "unique_id": f"{uid}_faces",
                "state_topic": self.state.topic(stream, "faces"),
                "state_class": "measurement",
                "icon": "mdi:account-multiple",
            }
            for kind, body in (("mood", mood), ("faces", faces)):
                out.append((f"{cfg.discovery_prefix}/sensor/{uid}_{kind}/config", to_json(body)))
        return out

    # -- the Sink interface ----------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        """Update the stream's retained state, publish its ``gap``/``change`` events and, when
        switched on, its frame event (rate-capped, QoS 0). Never blocks on the broker."""
        stream = frame.stream
        with self._lock:
            pairs = []
            if stream not in self.state.streams or frame.meta.get("gap"):
                gap = frame.meta.get("gap") or {}
                pairs += self.state.update_status(
                    stream, "online", **({"gap_s": gap["gap_s"]} if gap else {})
                )
            pairs += self.state.update_frame(frame)
        self._retain(pairs)
        for event in frame_side_events(frame):
            self._event(stream, event)
        if self.config.frame_events:
            now = time.monotonic()
            if now >= self._next_frame_event.get(stream, 0.0):
                self._next_frame_event[stream] = now + 1.0 / self.config.frame_events_hz
                self._event(stream, build_frame_event(frame), sub="frames", qos=0)

    def outage(self, stream: str, info: dict[str, Any]) -> None:
        """``status: reconnecting`` with ``down_s`` and ``attempts``, and an ``outage`` event."""
        figures = {
            "down_s": round(float(info.get("down_s", 0.0)), 1),
            "attempts": int(info.get("attempts", 0)),
        }
        with self._lock:
            pairs = self.state.update_status(stream, "reconnecting", **figures)
        self._retain(pairs)
        self._event(stream, build_outage_event(stream, info))

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        """The ``change`` events ending the open tracks, their topics cleared, ``status: ended``."""
        for event in stream_end_change_events(stream, info):
            self._event(stream, event)
        with self._lock:
            pairs = self.state.end_stream(stream, int(info.get("frames", 0) or 0))
        self._retain(pairs)

    def counters(self) -> dict[str, int]:
        return {
            "events_sent": getattr(self, "events_sent", 0),
            "events_dropped": getattr(self, "events_dropped", 0),
        }

    def close(self) -> None:
        """``available: offline`` (retained), then disconnect once paho has sent what it holds
        (at most ``connect_timeout_s``)."""
        client = getattr(self, "client", None)
        if client is None:
            return
        self._closing = True
        if self._connected.is_set():
            info = client.publish(self.available, b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(self.config.connect_timeout_s)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()
        if self.events_dropped:
            log.warning("mqtt sink: %d events dropped while the broker was away", self.events_dropped)
