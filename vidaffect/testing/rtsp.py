"""Start and stop ``vidaffect/testing/rtsp_server.py`` (GStreamer, system Python) from the project's Python.

Used by the RTSP tests and the RTSP latency benchmark: a real RTSP server on 127.0.0.1 that
streams a clip in real time, like an IP camera, and that can be killed and restarted.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")
INSTALL_HINT = (
    "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad gstreamer1.0-tools (or: make rtsp-deps)"
)


def has_gst_rtsp() -> bool:
    """True when the system Python can import GStreamer's RTSP server bindings."""
    if not Path(SYSTEM_PYTHON).exists() or shutil.which("gst-inspect-1.0") is None:
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


class RtspServer:
    """``vidaffect/testing/rtsp_server.py`` serving ``clip`` at ``rtsp://127.0.0.1:PORT/stream``; restartable.

    Every client that connects gets the clip from its start, paced in real time.

    Raises:
        RuntimeError: from :meth:`start` when the server does not report ``ready``.
    """

    def __init__(self, clip: Path, port: int) -> None:
        self.clip, self.port = clip, port
        self.url = f"rtsp://127.0.0.1:{port}/stream"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.clip), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.kill()
            raise RuntimeError(f"RTSP server did not start: {line!r}")

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.communicate(timeout=10)  # reap it and close its pipes
            self.proc = None

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
