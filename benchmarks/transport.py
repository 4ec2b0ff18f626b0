"""Frames between two processes over ZeroMQ, next to an in-process memcpy (the ceiling).

    python -m benchmarks.transport [--frames 300] [--hwm 4]

For 640x480, 1280x720 and 1920x1080 BGR uint8 frames, in one run: a plain ``np.copyto`` of
the frame's bytes in this process, then the engine's own path -- :func:`vidaffect.runtime.codec.
encode_frame`, a PUSH socket with the pipeline's high-water mark, a PULL socket bound in a
second process spawned like a stage, :func:`vidaffect.runtime.codec.decode` into a numpy frame -- over ipc://,
tcp:// on loopback, and tcp:// with the tcp transport's CurveZMQ (a run key pair, see
:mod:`vidaffect.runtime.security`). The clock runs on the sender from the first send to the receiver's
acknowledgement of the last frame; the receiver touches every frame (checks one byte).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from benchmarks.common import print_table
from vidaffect.frames import Frame
from vidaffect.runtime.codec import decode, encode_frame
from vidaffect.runtime.security import PeerAuth, RunKeys
from vidaffect.runtime.transport import (
    free_tcp_port,
    pull_socket,
    push_socket,
    send_parts,
    use_stage_malloc_settings,
)

SIZES = [(640, 480), (1280, 720), (1920, 1080)]


def _receiver(endpoint: str, ack: str, n: int, hwm: int, keys: dict[str, str] | None) -> None:
    ctx = zmq.Context()
    auth = PeerAuth(RunKeys.from_spec(keys) if keys else None)
    pull = pull_socket(ctx, endpoint, hwm, auth=auth)
    out = ctx.socket(zmq.PUSH)
    out.connect(ack)
    out.send(b"ready")
    checksum = 0
    for _ in range(n):
        _, frame = decode(pull.recv_multipart(copy=False))
        assert frame is not None
        checksum += int(frame.image[0, 0, 0])
    out.send(str(checksum).encode())
    out.close(linger=-1)
    pull.close(linger=0)
    auth.close()
    ctx.term()


def over_zmq(endpoint: str, image: np.ndarray, n: int, hwm: int, curve: bool = False) -> float:
    """Seconds to move ``n`` frames of ``image`` to another process through ``endpoint``
    (``curve``: with a CurveZMQ run key pair)."""
    keys = RunKeys.generate() if curve else None
    ctx = zmq.Context()
    ack = ctx.socket(zmq.PULL)
    ack_port = ack.bind_to_random_port("tcp://127.0.0.1")
    proc = mp.get_context("spawn").Process(
        target=_receiver, args=(endpoint, f"tcp://127.0.0.1:{ack_port}", n, hwm, keys and keys.to_spec())
    )
    proc.start()
    assert ack.recv() == b"ready"
    push = push_socket(ctx, endpoint, hwm, auth=PeerAuth(keys))
    frames = [Frame(image, "bench", i, time.time_ns()) for i in range(n)]
    t0 = time.perf_counter()
    for frame in frames:
        send_parts(push, encode_frame(frame))
    ack.recv()
    elapsed = time.perf_counter() - t0
    proc.join()
    push.close(linger=0)
    ack.close(linger=0)
    ctx.term()
    return elapsed


def memcpy(image: np.ndarray, n: int) -> float:
    dst = np.empty_like(image)
    t0 = time.perf_counter()
    for _ in range(n):
        np.copyto(dst, image)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300, help="frames per measurement")
    ap.add_argument("--hwm", type=int, default=4, help="high-water mark (the pipeline default)")
    args = ap.parse_args(argv)
    use_stage_malloc_settings()  # the receiver starts like a stage process
    rng = np.random.default_rng(0)
    rows = []
    run_dir = Path(tempfile.mkdtemp(prefix="vidaffect-transport-"))
    for w, h in SIZES:
        image = rng.integers(0, 256, (h, w, 3), np.uint8)
        mb = image.nbytes / 1e9
        t_mem = memcpy(image, args.frames)
        row = [f"{w}x{h}", image.nbytes / 2**20, args.frames / t_mem, args.frames * mb / t_mem]
        per_frame = {}
        for name in ("ipc", "tcp", "tcp+curve"):
            ep = f"ipc://{run_dir}/bench-{w}.sock" if name == "ipc" else f"tcp://127.0.0.1:{free_tcp_port()}"
            t = over_zmq(ep, image, args.frames, args.hwm, curve=name == "tcp+curve")
            per_frame[name] = 1000 * t / args.frames
            row += [args.frames / t, args.frames * mb / t, 100 * t_mem / t]
        row.append(per_frame["tcp+curve"] - per_frame["tcp"])
        rows.append(row)
    print_table(
        f"frame transport, {args.frames} frames, high-water mark {args.hwm}",
        [
            "frame",
            "MiB",
            "memcpy fps",
            "memcpy GB/s",
            "ipc fps",
            "ipc GB/s",
            "ipc % of memcpy",
            "tcp fps",
            "tcp GB/s",
            "tcp % of memcpy",
            "tcp+curve fps",
            "tcp+curve GB/s",
            "tcp+curve % of memcpy",
            "curve ms/frame",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
