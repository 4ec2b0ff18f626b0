"""The ``jsonl`` sink: one JSON event per frame per line (the same events ``zmq_events`` publishes)."""

from __future__ import annotations

from pydantic import Field

from vidaffect.api import PluginConfig, Sink
from vidaffect.events import build_frame_event, encode_event
from vidaffect.frames import Frame
from vidaffect_plugins.sinks.paths import prepare_output


class JsonlSink(Sink):
    """Appends events (schema ``vidaffect/schemas/event.v1.json``) to a file, one per line."""

    name = "jsonl"
    summary = "JSON Lines file of per-frame events"

    class Config(PluginConfig):
        path: str = Field(description="output file (overwritten)")
        flush_every: int = Field(1, ge=1, description="flush to disk every N lines")

    config: Config

    def open(self) -> None:
        path = prepare_output(self.config.path, "jsonl")
        self.file = path.open("wb")
        self.lines = 0

    def write(self, frame: Frame) -> None:
        self.file.write(encode_event(build_frame_event(frame)) + b"\n")
        self.lines += 1
        if self.lines % self.config.flush_every == 0:
            self.file.flush()

    def close(self) -> None:
        if hasattr(self, "file"):
            self.file.close()
