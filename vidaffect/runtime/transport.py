"""ZeroMQ sockets between stages: endpoint allocation, socket options, blocking sends.

Between stages: PUSH (upstream, connects) -> PULL (downstream worker, binds its own endpoint).
An upstream stage keeps one PUSH socket per downstream worker, so it can load-balance frames
over workers and broadcast end-of-stream to all of them. High-water marks are small so a live
pipeline never queues more than a few frames (backpressure reaches the source, which drops
the oldest frame).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

import zmq

from vidaffect.runtime.codec import ZERO_COPY_MIN
from vidaffect.runtime.security import PeerAuth

LINGER_MS = 0  # set per close: deliver on a clean end, drop on abort
SOCKET_BUFFER_BYTES = 8 * 2**20
"""Kernel send/receive buffer of stage sockets in offline pipelines: a 1080p BGR frame
(5.9 MiB) fits, so it crosses in a few system calls; ``benchmarks/transport.py`` measured
about 2x the throughput of the OS default (the kernel caps it at ``net.core.wmem_max`` /
``rmem_max``). Live pipelines keep the OS default: frames parked in kernel buffers are
invisible to the high-water mark, so they would add latency that the source's drop-oldest
cannot remove."""


MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(256 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
"""glibc malloc settings for stage processes. Each received frame is a fresh multi-megabyte
buffer; by default glibc serves such sizes with a new ``mmap``, so every frame pays a page
fault per 4 KiB page (about 1500 for 1080p). With these, freed frame buffers are reused from
the heap: ``benchmarks/transport.py`` measured 1080p at 35% of memcpy instead of 24-29%."""


def use_stage_malloc_settings() -> None:
    """Put :data:`MALLOC_ENV` into ``os.environ`` (keeping values the user set), so processes
    spawned from now on start with it (glibc reads it at start-up)."""
    for key, value in MALLOC_ENV.items():
        os.environ.setdefault(key, value)


class EndpointAllocator:
    """Hands out endpoints to bind: ``ipc://RUN_DIR/NAME.sock``, ``tcp://HOST:PORT`` from
    ``port_base`` on, or ``tcp://HOST:*`` (the system picks a free port at bind time; read it
    back with :func:`bound_endpoint`)."""

    def __init__(
        self, transport: str, run_dir: Path, host: str = "127.0.0.1", port_base: int | None = None
    ) -> None:
        self.transport, self.run_dir, self.host = transport, run_dir, host
        self._ports = count(port_base) if port_base else None

    def __call__(self, name: str) -> str:
        if self.transport == "ipc":
            return f"ipc://{self.run_dir / name}.sock"
        port = next(self._ports) if self._ports else "*"
        return f"tcp://{self.host}:{port}"


def bound_endpoint(sock: zmq.Socket) -> str:
    """The endpoint ``sock`` was last bound to, with the port the system chose for ``*``."""
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def connect_address(endpoint: str) -> str:
    """The address to connect to for a bound endpoint (``0.0.0.0``/``*`` becomes loopback)."""
    return endpoint.replace("://0.0.0.0:", "://127.0.0.1:").replace("://*:", "://127.0.0.1:")


def pull_socket(
    ctx: zmq.Context,
    endpoint: str,
    hwm: int,
    buffer_bytes: int | None = None,
    auth: PeerAuth | None = None,
    max_bytes: int = -1,
) -> zmq.Socket:
    """A bound PULL socket; ``buffer_bytes`` sets the kernel receive buffer (None: OS default),
    ``auth`` makes it a CURVE server of the run (see :mod:`.security`), ``max_bytes`` is
    the largest message part accepted (-1: no limit)."""
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if buffer_bytes:
        sock.setsockopt(zmq.RCVBUF, buffer_bytes)
    sock.setsockopt(zmq.LINGER, 0)
    if auth is not None:
        auth.server(sock, max_bytes)
    else:
        sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
    sock.bind(endpoint)
    return sock


def push_socket(
    ctx: zmq.Context, endpoint: str, hwm: int, buffer_bytes: int | None = None, auth: PeerAuth | None = None
) -> zmq.Socket:
    """A connected PUSH socket; ``buffer_bytes`` sets the kernel send buffer (None: OS default),
    ``auth`` makes it a CURVE client of the run."""
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, hwm)
    if buffer_bytes:
        sock.setsockopt(zmq.SNDBUF, buffer_bytes)
    sock.setsockopt(zmq.LINGER, LINGER_MS)
    if auth is not None:
        auth.client(sock)
    sock.connect(connect_address(endpoint))
    return sock


def send_parts(sock: zmq.Socket, parts: list[Any], flags: int = 0) -> None:
    """Send a multipart message; buffers of ``ZERO_COPY_MIN`` bytes or more go without copy."""
    last = len(parts) - 1
    for i, part in enumerate(parts):
        nbytes = memoryview(part).nbytes
        sock.send(part, flags=flags | (zmq.SNDMORE if i < last else 0), copy=nbytes < ZERO_COPY_MIN)


_MOVED = object()
"""What :meth:`Fanout._wait_writable` returns when the worker it waited for has moved."""


class Fanout:
    """The PUSH sockets of one downstream stage (one per worker), with load balancing.

    ``send`` gives a message to the first writable worker in round-robin order, waiting while
    all are full (backpressure) and calling ``should_abort`` every ``poll_ms`` so a stop
    request is never blocked by a stuck consumer. With ``drop_when_full`` (a sink of a live
    pipeline with other sinks beside it) a full queue means the frame is skipped for that
    consumer and counted in ``skipped``, so one slow sink never holds up the others.
    ``broadcast`` sends to every worker (EOS) and always waits. ``connect`` (re)points it at
    the workers' endpoints: a socket whose endpoint is unchanged is kept with its queue.
    """

    def __init__(
        self,
        make_socket: Callable[[str], zmq.Socket],
        should_abort: Callable[[], bool],
        poll_ms: int = 100,
        drop_when_full: bool = False,
    ) -> None:
        self.make_socket, self.should_abort, self.poll_ms = make_socket, should_abort, poll_ms
        self.drop_when_full = drop_when_full
        self.skipped = 0  # frames not sent because every worker's queue was full
        self._next = 0
        self.endpoints: list[str] = []
        self.sockets: list[zmq.Socket] = []
        self.pending: list[str] | None = None
        self.poller = zmq.Poller()

    def connect(self, endpoints: list[str]) -> None:
        """One PUSH socket per endpoint, in worker order; sockets to endpoints no longer
        listed are closed (what they held is lost with the worker that left them)."""
        old = dict(zip(self.endpoints, self.sockets))
        self.sockets = [old.pop(ep) if ep in old else self.make_socket(ep) for ep in endpoints]
        self.endpoints = list(endpoints)
        for sock in old.values():
            sock.close(linger=0)
        self.poller = zmq.Poller()
        for sock in self.sockets:
            self.poller.register(sock, zmq.POLLOUT)
        self._next = 0

    def reconnect_later(self, endpoints: list[str]) -> None:
        """Connect to ``endpoints`` at the next safe point: before the next send, or while a
        send waits for a worker that has moved (called from ``should_abort``)."""
        if endpoints != self.endpoints:
            self.pending = list(endpoints)

    def apply_pending(self) -> None:
        """Connect to the endpoints :meth:`reconnect_later` was given, if any."""
        if self.pending is not None:
            endpoints, self.pending = self.pending, None
            self.connect(endpoints)

    def _wait_writable(self, pick: Callable[[list[zmq.Socket]], list[zmq.Socket]]) -> Any:
        """The first writable socket among ``pick(sockets)`` (re-picked after a reconnect;
        ``_MOVED`` when it picks none), None on abort."""
        while True:
            self.apply_pending()
            candidates = pick(self.sockets)
            if not candidates:
                return _MOVED
            ready = dict(self.poller.poll(self.poll_ms))
            for s in candidates:
                if ready.get(s, 0) & zmq.POLLOUT:
                    return s
            if self.should_abort():
                return None

    def send(self, parts: list[Any], key: int | None = None) -> bool:
        """Send to one worker; False when aborted before it could be sent.

        With ``key``, always to worker ``key % n`` (a stream keeps its worker, which holds
        per-stream state such as its face tracker); else to the next writable worker.
        """
        self.apply_pending()
        if self.drop_when_full:
            n = len(self.sockets)
            targets = [self.sockets[key % n]] if key is not None else self.sockets
            ready = dict(self.poller.poll(0))
            writable = [s for s in targets if ready.get(s, 0) & zmq.POLLOUT]
            if not writable:
                self.skipped += 1
                return True
            send_parts(writable[0], parts)
            return True
        if key is not None:
            sock = self._wait_writable(lambda socks: [socks[key % len(socks)]])
        else:
            sock = self._wait_writable(
                lambda socks: [socks[(self._next + i) % len(socks)] for i in range(len(socks))]
            )
        if sock is None:
            return False
        if key is None:
            self._next = (self.sockets.index(sock) + 1) % len(self.sockets)
        send_parts(sock, parts)
        return True

    def _socket_of(self, endpoint: str, sockets: list[zmq.Socket]) -> list[zmq.Socket]:
        return [s for e, s in zip(self.endpoints, sockets) if e == endpoint]

    def broadcast(self, parts: list[Any]) -> bool:
        """Send to every worker, in worker order (and to a worker that replaced one while it
        waited); False when aborted before all got it."""
        sent: set[str] = set()
        while True:
            self.apply_pending()
            todo = [ep for ep in self.endpoints if ep not in sent]
            if not todo:
                return True
            sock = self._wait_writable(functools.partial(self._socket_of, todo[0]))
            if sock is None:
                return False
            if sock is not _MOVED:
                send_parts(sock, parts)
                sent.add(todo[0])

    def close(self, linger_ms: int = 0) -> None:
        """Close the sockets; ``linger_ms`` -1 waits until queued messages are delivered."""
        for s in self.sockets:
            s.close(linger=linger_ms)


def cleanup_ipc(run_dir: Path) -> None:
    """Remove the socket files of an ipc run directory and the directory itself."""
    if run_dir.is_dir():
        for f in run_dir.iterdir():
            try:
                f.unlink()
            except OSError:
                pass
        try:
            os.rmdir(run_dir)
        except OSError:
            pass
