"""Who may talk to a run's sockets: CurveZMQ keys, refused peers, message size limits.

With the tcp transport every stage socket is a TCP port that any process on the host (or,
bound beyond loopback, on the network) can connect to. So the supervisor makes one CurveZMQ
key pair per run (RFC 26/CurveZMQ: Curve25519 key exchange, every message encrypted and
authenticated) and hands it to its stages in their spec, never over a socket and never in a
file. Every bound socket of the run (stage inputs, the supervisor's updates and control
channels) is a CURVE server with that pair. A client must know the server's public key to
build its first handshake command (HELLO is a box to that key), and this public key is the
run's secret: it exists only in the memory of the supervisor and its stages. A process
without it fails the handshake, and none of its messages is ever delivered.

No ZAP handler is installed: in libzmq 4.3.5 a PULL socket with a ZAP handler and a receive
high-water mark of 1 (the live pipelines' hop) stops delivering (``poll`` reports a message
that ``recv`` then waits for forever). The run key is a shared secret instead, like a
pre-shared key. Across hosts, where the stages cannot receive a key from the supervisor's
memory, ``pipeline.curve_secret_key`` names a key pair file (``vidaffect keys``) that every
host holds instead; keep both of its files (``NAME.key`` and ``NAME.key_secret``) private.

The ipc transport needs none of this: its socket files live in a run folder of mode 0700,
so only the user running the pipeline can connect.

Independently of authentication, every receiving socket gets ``ZMQ_MAXMSGSIZE``: ZeroMQ
refuses a larger message part while reading its length, before allocating it, and drops the
connection that sent it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq

from vidaffect.errors import VidaffectError

CONTROL_MAX_BYTES = 64 * 2**10
"""Largest control message a stage accepts from the supervisor (``upstream_ended`` lists)."""
UPDATE_MAX_BYTES = 4 * 2**20
"""Largest report the supervisor accepts from a stage (tracebacks included)."""


@dataclass(frozen=True)
class RunKeys:
    """A CurveZMQ key pair, Z85-encoded (40 ASCII characters each): the servers' pair of a
    run. Every bound socket of the run uses it; every connecting socket names its public half
    as the server key. Both halves are secret."""

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> RunKeys:
        """A fresh pair (libsodium's random source), made once per run by the supervisor."""
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    @classmethod
    def load(cls, path: str | Path) -> RunKeys:
        """The pair in a ``NAME.key_secret`` file written by ``vidaffect keys``.

        Raises:
            VidaffectError: the file cannot be read or holds no secret key.
        """
        import zmq.auth

        try:
            public, secret = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError) as exc:
            raise VidaffectError(f"pipeline › curve_secret_key: cannot read {path}: {exc}") from None
        if secret is None:
            raise VidaffectError(
                f"pipeline › curve_secret_key: {path} holds no secret key "
                "(give the NAME.key_secret file that `vidaffect keys` wrote)"
            )
        return cls(public, secret)

    def to_spec(self) -> dict[str, str]:
        """Plain values for a stage spec."""
        return {"public": self.public.decode(), "secret": self.secret.decode()}

    @classmethod
    def from_spec(cls, value: dict[str, str]) -> RunKeys:
        return cls(value["public"].encode(), value["secret"].encode())


def holds_secret_key(path: str | Path) -> bool:
    """Whether ``path`` is a ZeroMQ certificate file with a secret key (``vidaffect keys``)."""
    import zmq.auth

    try:
        return zmq.auth.load_certificate(str(path))[1] is not None
    except (OSError, ValueError):
        return False


_REFUSALS = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
"""Socket-monitor events of a refused peer: no CURVE at all (mechanism mismatch) or a HELLO
made for another server key."""


class PeerAuth:
    """The socket options of one process of a run.

    ``server`` and ``client`` must be applied before ``bind``/``connect``; :meth:`refused`
    counts the handshakes that server sockets refused; :meth:`close` closes the monitors that
    count them (after the sockets).

    Args:
        keys: the run's key pair, or None for no authentication (ipc, or ``auth: none``).
    """

    def __init__(self, keys: RunKeys | None) -> None:
        self.keys = keys
        self._client_pair = zmq.curve_keypair() if keys is not None else None
        self._monitors: list[zmq.Socket] = []
        self._refused = 0

    def refused(self) -> int:
        """Handshakes refused so far on this process's server sockets (a peer without the
        run's key; a peer retries about every 0.1 s, so one intruder counts several times).
        Call it from the thread that owns the sockets; it reads their monitor events."""
        from zmq.utils.monitor import recv_monitor_message

        for mon in self._monitors:
            while True:
                try:
                    recv_monitor_message(mon, zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._refused += 1
        return self._refused

    def server(self, sock: zmq.Socket, max_bytes: int) -> zmq.Socket:
        """A socket that binds and receives: CURVE server (when keyed) and ``MAXMSGSIZE``."""
        sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
        if self.keys is not None:
            sock.curve_secretkey = self.keys.secret
            sock.curve_publickey = self.keys.public
            sock.curve_server = True
            self._monitors.append(sock.get_monitor_socket(_REFUSALS))
        return sock

    def client(self, sock: zmq.Socket, max_bytes: int | None = None) -> zmq.Socket:
        """A socket that connects: CURVE client of the run's server key (when keyed), with a
        key pair of this process; ``max_bytes`` for a connecting socket that receives (SUB)."""
        if max_bytes is not None:
            sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
        if self.keys is not None and self._client_pair is not None:
            sock.curve_serverkey = self.keys.public
            sock.curve_publickey, sock.curve_secretkey = self._client_pair
        return sock

    def close(self) -> None:
        """Close the monitors (after the sockets are closed)."""
        for mon in self._monitors:
            mon.close(0)
        self._monitors.clear()
