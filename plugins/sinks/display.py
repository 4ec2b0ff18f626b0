"""The ``display`` sink: an OpenCV window per stream (desktops)."""

from __future__ import annotations

import os
import sys

import cv2
from pydantic import Field

from vidaffect.api import PluginConfig, Sink
from vidaffect.errors import PluginError, SinkError
from vidaffect.frames import Frame
from vidaffect.imaging.draw import annotate

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Q, Esc


def display_available() -> bool:
    """False on Linux/BSD without ``DISPLAY`` or ``WAYLAND_DISPLAY``; True elsewhere."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class DisplaySink(Sink):
    """Shows annotated frames with ``cv2.imshow``, one resizable window per stream.

    Each frame is followed by ``cv2.waitKey(1)``; pressing ``q`` or Esc in a window sets
    :attr:`quit_requested` (the runtime may read it to stop the pipeline).

    Attributes:
        quit_requested: True once the user pressed ``q`` or Esc.
        windows: titles of the windows opened so far.
    """

    name = "display"
    summary = "window showing annotated frames (needs a desktop; q or Esc quits)"

    class Config(PluginConfig):
        title: str = Field(
            "vidaffect", min_length=1, description="window title; ' [<stream id>]' is appended"
        )
        prob_bars: bool = Field(True, description="draw a probability bar per label beside each face")

    config: Config
    quit_requested: bool = False

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Check that a desktop display exists (the config may be valid elsewhere).

        Raises:
            PluginError: no display is available (Linux without DISPLAY/WAYLAND_DISPLAY).
        """
        if not display_available():
            raise PluginError(
                "display sink: no display available (neither DISPLAY nor "
                "WAYLAND_DISPLAY is set); use the video sink to write an "
                "annotated file instead"
            )

    def open(self) -> None:
        """Check that a display exists, as :meth:`preflight` does.

        Raises:
            PluginError: no display is available.
        """
        self.preflight(self.config)
        self.windows: set[str] = set()
        self.quit_requested = False

    def write(self, frame: Frame) -> None:
        """Show the annotated frame in its stream's window and poll the keyboard.

        Raises:
            SinkError: OpenCV has no GUI support (e.g. opencv-python-headless).
        """
        title = f"{self.config.title} [{frame.stream}]"
        img = annotate(frame.image, frame.faces, frame.meta.get("labels"), self.config.prob_bars)
        try:
            if title not in self.windows:
                cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
                self.windows.add(title)
            cv2.imshow(title, img)
            key = cv2.waitKey(1)
        except cv2.error as exc:
            raise SinkError(
                f"display sink: cannot show a window ({exc.err}); OpenCV may "
                "lack GUI support; use the video sink instead"
            ) from None
        if key != -1 and (key & 0xFF) in QUIT_KEYS:
            self.quit_requested = True

    def close(self) -> None:
        """Close this sink's windows (windows the user already closed are skipped)."""
        windows: set[str] = getattr(self, "windows", set())
        self.windows = set()
        for title in windows:
            try:
                cv2.destroyWindow(title)
            except cv2.error:
                pass
        if windows:
            cv2.waitKey(1)  # let HighGUI process the close events
