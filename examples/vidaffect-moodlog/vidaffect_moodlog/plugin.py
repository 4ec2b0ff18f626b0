"""The ``moodlog`` sink: one CSV row per stream and time window with the dominant emotion."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field

import vidaffect
from vidaffect.api import PluginConfig, Sink
from vidaffect.frames import Frame


class MoodLogSink(Sink):
    """Writes ``stream, window_start_s, frames, faces, dominant, share`` rows to a CSV file.

    The window of a frame is ``pts_ms / 1000 // window_s`` (capture time for live sources).
    """

    name = "moodlog"
    summary = "CSV of the dominant emotion per time window (example third-party plugin)"

    class Config(PluginConfig):
        path: str = Field(description="CSV file to write")
        window_s: float = Field(1.0, gt=0, description="window length in seconds")

    config: Config

    def open(self) -> None:
        path = Path(self.config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(["stream", "window_start_s", "frames", "faces", "dominant", "share"])
        self.current: dict[str, tuple[int, int, Counter[str]]] = {}
        self.t0: dict[str, int] = {}

    def _window(self, frame: Frame) -> int:
        if frame.pts_ms is not None:
            seconds = frame.pts_ms / 1000
        else:
            seconds = (frame.ts_ns - self.t0.setdefault(frame.stream, frame.ts_ns)) / 1e9
        return int(seconds // self.config.window_s)

    def write(self, frame: Frame) -> None:
        window = self._window(frame)
        cur = self.current.get(frame.stream)
        if cur is not None and cur[0] != window:
            self._flush(frame.stream)
            cur = None
        if cur is None:
            cur = (window, 0, Counter())
        labels = [f["emotion"]["label"] for f in frame.faces if f.get("emotion")]
        cur[2].update(labels)
        self.current[frame.stream] = (window, cur[1] + 1, cur[2])

    def _flush(self, stream: str) -> None:
        window, frames, counts = self.current.pop(stream)
        total = sum(counts.values())
        label, n = counts.most_common(1)[0] if counts else ("", 0)
        self.writer.writerow(
            [
                stream,
                round(window * self.config.window_s, 3),
                frames,
                total,
                label,
                round(n / total, 3) if total else 0.0,
            ]
        )
        self.file.flush()

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        if stream in self.current:
            self._flush(stream)

    def close(self) -> None:
        if hasattr(self, "file"):
            for stream in list(self.current):
                self._flush(stream)
            self.file.close()


@vidaffect.hookimpl
def register_sinks(register: vidaffect.Register) -> None:
    register(MoodLogSink)
