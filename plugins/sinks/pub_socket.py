"""ZeroMQ PUB sockets of the sinks that publish (``zmq_events``, ``preview``): checking before
the run that the endpoint can be bound, and binding."""

from __future__ import annotations

import zmq

from vidaffect.errors import SinkError


def _bind_error(sink: str, endpoint: str, exc: zmq.ZMQError) -> SinkError:
    hint = " (another vidaffect run, or another program, uses it)" if exc.errno == zmq.EADDRINUSE else ""
    return SinkError(f"{sink} sink: cannot bind {endpoint}: {zmq.strerror(exc.errno or 0)}{hint}")


def check_bindable(sink: str, endpoint: str) -> None:
    """Bind a PUB socket to ``endpoint`` and close it (a check before any stage starts).

    Raises:
        SinkError: the address is in use or malformed, naming ``sink`` and the endpoint.
    """
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        raise _bind_error(sink, endpoint, exc) from None
    finally:
        sock.close(0)
        ctx.term()


def bind_pub(sink: str, sock: zmq.Socket[bytes], endpoint: str) -> str:
    """Bind ``sock``; the endpoint bound (a ``*`` port resolved).

    Raises:
        SinkError: it cannot be bound (the socket is then closed).
    """
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise _bind_error(sink, endpoint, exc) from None
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)
