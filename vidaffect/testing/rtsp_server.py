#!/usr/bin/python3
"""Serve an H.264 video file over RTSP, like an IP camera (GStreamer's RTSP server).

    /usr/bin/python3 vidaffect/testing/rtsp_server.py CLIP.mp4 [--port 8554] [--mount /stream]

Then ``rtsp://127.0.0.1:8554/stream`` plays the clip in real time to every client that
connects (each client from the start; the stream ends with the clip). The H.264 of an MP4 or
MOV is sent as it is (no re-encoding), so the server costs almost no CPU. Use it to try
vidaffect's ``stream`` source without a camera; the tests use it the same way.

It runs on the system Python with Debian's GStreamer bindings, not in the project's virtualenv:

    apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 \\
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad

It binds 127.0.0.1 unless ``--host`` says otherwise, prints ``ready rtsp://...`` once it
accepts clients, and stops on SIGINT/SIGTERM.
"""

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip", type=Path, help="an MP4/MOV file with H.264 video")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--mount", default="/stream")
    args = ap.parse_args()
    if not args.clip.is_file():
        print(f"rtsp_server: no such file: {args.clip}", file=sys.stderr)
        return 2
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = str(args.clip.resolve()).replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
        f"! rtph264pay name=pay0 pt=96 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready rtsp://{args.host}:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
