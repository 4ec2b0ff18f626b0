"""Built-in sinks: annotated video file, annotated images, display window, JSON events over
ZeroMQ, JSONL file, MQTT, webhooks, the dashboard's preview."""

from __future__ import annotations

import vidaffect
from vidaffect_plugins.sinks.display import DisplaySink
from vidaffect_plugins.sinks.images import ImagesSink
from vidaffect_plugins.sinks.jsonl import JsonlSink
from vidaffect_plugins.sinks.mqtt import MqttSink
from vidaffect_plugins.sinks.preview import PreviewSink
from vidaffect_plugins.sinks.video import VideoSink
from vidaffect_plugins.sinks.webhook import WebhookSink
from vidaffect_plugins.sinks.zmq_events import ZmqEventsSink

SINKS = (VideoSink, ImagesSink, DisplaySink, JsonlSink, ZmqEventsSink, MqttSink, WebhookSink, PreviewSink)


@vidaffect.hookimpl
def register_sinks(register: vidaffect.Register) -> None:
    """Register the built-in sinks: ``video``, ``images``, ``display``, ``jsonl``, ``zmq_events``, ``mqtt``, ``webhook``, ``preview``."""
    for cls in SINKS:
        register(cls)
