"""Whether an address a socket binds to can be reached from other hosts.

Used to refuse, before anything starts, a bind beyond loopback that has no authentication
(the stage ports, the events endpoint, the metrics port) unless the user asks for it.
"""

from __future__ import annotations

LOOPBACK_NAMES = ("localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to bind) reaches this host only.

    ``0.0.0.0``, ``*`` and ``::`` listen on every interface, and a LAN address on one
    network, so none of them is loopback.
    """
    return host in LOOPBACK_NAMES or host.startswith("127.")


def endpoint_is_local(endpoint: str) -> bool:
    """Whether a ZeroMQ endpoint can be reached from this host only: ``ipc://``,
    ``inproc://``, or ``tcp://`` on a loopback address."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    return is_loopback(rest.rsplit(":", 1)[0])
