"""Latency that OpenCV's FFmpeg RTSP client adds, for several capture settings, on a real server.

    python -m benchmarks.rtsp_latency [CLIP] [--seconds 10]

``vidaffect/testing/rtsp_server.py`` (GStreamer) streams CLIP over RTSP on 127.0.0.1 in real time; each
setting opens a fresh session through the ``stream`` source's own ``_open_capture`` (the
options a pipeline would use) and reads frames as fast as they come for ``--seconds``.

For every frame, lag = (time since the open began) - (the frame's presentation time). The
server starts the clip when the client sends PLAY, so lag is the delay the client adds
(buffering, decoding) plus the connection handshake, which happens before PLAY and so makes
the figure an upper bound. "first" is the wall time from open to the first decoded frame;
"frames" counts the frames read against what the server sent in that time (a stall shows
as a shortfall).

The first row is the floor no client can beat: a minimal RTSP client on a socket (DESCRIBE,
SETUP, PLAY) and the time until the server's first RTP packet arrives.
"""

from __future__ import annotations

import argparse
import re
import socket
import time
from pathlib import Path

import cv2

from benchmarks.common import percentiles, print_table
from vidaffect.runtime.transport import free_tcp_port
from vidaffect.testing.rtsp import RtspServer, has_gst_rtsp
from vidaffect_plugins.capture import StreamSource

SETTINGS: dict[str, dict[str, object]] = {
    "tcp, full probe (low_delay: false)": {"low_delay": False},
    "tcp, low_delay (the default)": {},
    "tcp, low_delay + analyzeduration 0": {"ffmpeg_options": {"analyzeduration": "0"}},
    "tcp, low_delay + fflags nobuffer": {"ffmpeg_options": {"fflags": "nobuffer"}},
    "udp, full probe": {"rtsp_transport": "udp", "low_delay": False},
    "udp, low_delay": {"rtsp_transport": "udp"},
}


def _request(sock: socket.socket, method: str, url: str, cseq: int, headers: str = "") -> tuple[str, str]:
    """One RTSP request; returns (response head, body)."""
    sock.sendall(f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{headers}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"Content-Length: (\d+)", head)
    while length and len(body) < int(length.group(1)):
        body += sock.recv(65536)
    return head.decode(), body.decode(errors="replace")


def handshake_floor(url: str, port: int) -> float:
    """Milliseconds from connecting to the first RTP packet (interleaved over the RTSP socket)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        _, sdp = _request(sock, "DESCRIBE", url, 1, "Accept: application/sdp\r\n")
        control = re.search(r"a=control:(\S+)", sdp.split("m=video", 1)[1])
        track = control.group(1) if control else ""
        track_url = track if track.startswith("rtsp") else f"{url}/{track}"
        head, _ = _request(sock, "SETUP", track_url, 2, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
        session = re.search(r"Session: ([^;\r]+)", head)
        if session is None:
            raise RuntimeError(f"RTSP SETUP failed: {head}")
        sock.sendall(f"PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session.group(1)}\r\n\r\n".encode())
        data = b""
        while b"$" not in data.partition(b"\r\n\r\n")[2]:  # '$' starts an interleaved RTP packet
            data += sock.recv(65536)
    return (time.monotonic() - t0) * 1000


def measure(url: str, options: dict[str, object], seconds: float) -> dict[str, float | int | None]:
    source = StreamSource(StreamSource.Config(uri=url, **options))
    t0 = time.monotonic()
    cap = source._open_capture()
    lags: list[float] = []
    first = None
    n = 0
    while cap.isOpened() and time.monotonic() - t0 < seconds:
        ok = cap.grab()
        if not ok:
            break
        now = time.monotonic()
        ok, _ = cap.retrieve()
        pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        first = first if first is not None else now - t0
        lags.append(now - t0 - pts)
        n += 1
    elapsed = time.monotonic() - t0
    cap.release()
    p50, p95, p99 = percentiles([x * 1000 for x in lags[30:]])  # steady state: after the first second
    return {
        "first": None if first is None else first * 1000,
        "p50": p50,
        "p95": p95,
        "max": max(lags) * 1000 if lags else None,
        "frames": n,
        "elapsed": elapsed,
        "last_pts": pts if lags else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "clip",
        type=Path,
        nargs="?",
        default=Path(__file__).resolve().parents[2] / "shared/data/videos/liveportrait_d3.mp4",
    )
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    if not has_gst_rtsp():
        raise SystemExit("needs GStreamer's RTSP server for /usr/bin/python3 (make rtsp-deps)")
    fps = cv2.VideoCapture(str(args.clip)).get(cv2.CAP_PROP_FPS)
    floors = []
    for _ in range(3):
        with RtspServer(args.clip, free_tcp_port()) as server:
            floors.append(handshake_floor(server.url, server.port))
    floor = sorted(floors)[1]
    rows: list[list[object]] = [["floor: handshake + first RTP packet", floor, None, None, None, "-"]]
    for name, options in SETTINGS.items():
        with RtspServer(args.clip, free_tcp_port()) as server:
            r = measure(server.url, options, args.seconds)
        sent = int(min(r["elapsed"], args.seconds) * fps)
        rows.append([name, r["first"], r["p50"], r["p95"], r["max"], f"{r['frames']}/~{sent}"])
    print_table(
        f"RTSP client latency, {args.clip.name} at {fps:.0f} fps, {args.seconds:.0f} s per setting (ms)",
        ["setting", "first frame", "lag p50", "lag p95", "lag max", "frames read/sent"],
        rows,
    )


if __name__ == "__main__":
    main()
