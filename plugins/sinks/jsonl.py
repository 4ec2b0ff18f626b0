"""The ``jsonl`` sink: one JSON event per line (the same events ``zmq_events`` publishes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

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
from vidaffect_plugins.sinks.output_files import prepare_output


class JsonlSink(Sink):
    """Writes events to a UTF-8 JSON Lines file: per frame its ``frame`` event, then its
    ``change`` events (with tracking).

    Each line is one event encoded compactly, valid against
    ``vidaffect/events/schemas/event.v5.json``; all streams share the file (events carry ``stream``).
    The file is truncated on open, flushed every ``flush_every`` lines, at each end of stream
    and on close, so a reader tailing it sees whole lines.

    Attributes:
        lines: lines written so far.
    """

    name = "jsonl"
    needs_pixels = False
    summary = "JSON Lines file of per-frame events"

    class Config(PluginConfig):
        path: str = Field(min_length=1, description="output file (overwritten)")
        flush_every: int = Field(1, ge=1, le=100_000, description="flush to disk every N lines")

    config: Config
    lines: int = 0

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Before any stage starts: the folder can be created and the file written there
        (nothing is created but the folder).

        Raises:
            SinkError: the folder is not writable, or the path is a folder.
        """
        path = prepare_output(config.path, "jsonl")  # type: ignore[attr-defined]
        if path.is_dir():
            raise SinkError(f"jsonl sink: {path} is a folder, not a file")

    def open(self) -> None:
        """Create the folder and open the file.

        Raises:
            SinkError: the file cannot be created (unwritable folder, path is a folder).
        """
        path = prepare_output(self.config.path, "jsonl")
        try:
            # a restarted sink continues the file its crashed predecessor wrote (whole lines:
            # a half line left by the crash is cut off first)
            if self.restarts and path.exists():
                keep_whole_lines(path)
            self.file = path.open("ab" if self.restarts else "wb", buffering=0)
        except OSError as exc:
            raise SinkError(f"jsonl sink: cannot write {path}: {exc.strerror}") from None
        self.lines = 0
        self.pending = bytearray()  # whole lines not yet written
        self.written = self.file.tell()  # bytes of whole lines in the file

    def write(self, frame: Frame) -> None:
        """Append the frame's event (and its change events) as lines."""
        self._lines([build_frame_event(frame)] + frame_side_events(frame))

    def _lines(self, events: list[dict[str, Any]]) -> None:
        """Append events; every ``flush_every`` lines they go to the file."""
        for event in events:
            self.pending += encode_event(event) + b"\n"
            self.lines += 1
            if self.lines % self.config.flush_every == 0:
                self._flush()

    def _flush(self) -> None:
        """Write the pending lines whole. A failing write (disk full, I/O error) is undone (the
        file is cut back to its last whole line, so it never ends in part of a line) and stops
        the pipeline with a :class:`~vidaffect.errors.SinkError` naming the file and the OS error."""
        data, self.pending = bytes(self.pending), bytearray()
        done = 0
        try:
            while done < len(data):
                done += self.file.write(data[done:]) or 0
        except OSError as exc:
            try:
                os.ftruncate(self.file.fileno(), self.written)
                self.file.seek(self.written)
            except OSError:
                pass
            raise SinkError(f"jsonl sink: cannot write {self.file.name}: {exc.strerror}") from None
        self.written += len(data)

    def outage(self, stream: str, info: dict[str, Any]) -> None:
        """Write an ``outage`` event (the stream is down) and flush."""
        self._lines([build_outage_event(stream, info)])
        self._flush()

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        """Write the change events ending open tracks, and flush."""
        self._lines(stream_end_change_events(stream, info))
        self._flush()

    def close(self) -> None:
        """Write what is pending and close the file (a write error is raised, the file still
        closed with whole lines only)."""
        file = getattr(self, "file", None)
        if file is None or file.closed:
            return
        try:
            if self.pending:
                self._flush()
        finally:
            file.close()


def keep_whole_lines(path: Path) -> None:
    """Cut a file back to its last newline (the half line a killed writer may have left).

    Raises:
        OSError: it cannot be read or truncated.
    """
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - (1 << 20))
        f.seek(start)
        end = f.read().rfind(b"\n")
        f.truncate(start + end + 1 if end >= 0 else start)
