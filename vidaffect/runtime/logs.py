"""Where the engine's log records go.

The engine logs through :mod:`logging`, under the ``vidaffect`` logger (and ``vidaffect_plugins``
for the built-in plugins); a program that embeds vidaffect routes or silences them as it routes
any library's. The ``vidaffect`` command shows them on stderr (:func:`configure`), and the stage
processes it starts do the same, told by the environment variables below, which they inherit.
"""

from __future__ import annotations

import logging
import os
import sys

DEBUG_ENV = "VIDAFFECT_DEBUG"
"""Set to ``1`` by ``vidaffect --debug``: debug records, and tracebacks of user-facing errors."""

LOGGERS = ("vidaffect", "vidaffect_plugins")


def debug_enabled() -> bool:
    """True when ``vidaffect --debug`` started this process or its parent."""
    return os.environ.get(DEBUG_ENV) == "1"


def configure(debug: bool | None = None) -> None:
    """Show the engine's log records on stderr: warnings and progress (INFO) as
    ``vidaffect: message``; with ``debug``, everything, with the logger name and process id.

    Args:
        debug: None reads :data:`DEBUG_ENV` (stage processes); True also sets it, so that the
            processes started from here show debug records too.
    """
    if debug:
        os.environ[DEBUG_ENV] = "1"
    debug = debug_enabled() if debug is None else debug
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s" if debug else "vidaffect: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        logger.propagate = False
