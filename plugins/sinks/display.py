"""The ``display`` sink: an OpenCV window per stream (desktops)."""

from __future__ import annotations

import os
import sys

import cv2
from pydantic import Field

from vidaffect.api import PluginConfig, Sink
from vidaffect.draw import annotate
from vidaffect.errors import VidaffectError
from vidaffect.frames import Frame


class DisplaySink(Sink):
    """Shows annotated frames with ``cv2.imshow``; ``q`` or Esc sets ``quit_requested``."""

    name = "display"
    summary = "window showing annotated frames (needs a desktop)"

    class Config(PluginConfig):
        title: str = Field("vidaffect", description="window title (the stream id is appended)")
        prob_bars: bool = Field(True, description="draw a probability bar per label")

    config: Config

    def open(self) -> None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise VidaffectError("display sink: no display available (DISPLAY is not set); "
                                 "use the video sink to write an annotated file instead")
        self.windows: set[str] = set()
        self.quit_requested = False

    def write(self, frame: Frame) -> None:
        title = f"{self.config.title} [{frame.stream}]"
        self.windows.add(title)
        cv2.imshow(title, annotate(frame.image, frame.faces, frame.meta.get("labels"), self.config.prob_bars))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit_requested = True

    def close(self) -> None:
        for title in getattr(self, "windows", ()):
            cv2.destroyWindow(title)
