"""vidaffect: a plugin-based, real-time video analytics engine for affect.

Sources read video, detectors find faces, classifiers estimate each face's emotion and
sinks hand the results on (annotated video, display window, JSON events over ZeroMQ).
Stages run as separate processes connected by ZeroMQ; see ``vidaffect.runtime``.
"""

__version__ = "0.1.0"

import logging  # noqa: E402
from typing import Any  # noqa: E402

from vidaffect.hookspecs import Register, hookimpl  # noqa: E402

logging.getLogger("vidaffect").addHandler(logging.NullHandler())  # the embedding program decides

__all__ = ["Register", "__version__", "analyze", "hookimpl"]


def __getattr__(name: str) -> Any:
    """``vidaffect.analyze`` (:func:`vidaffect.analytics.analyze.analyze`), imported on first use so
    that ``import vidaffect`` (every plugin does it) stays light."""
    if name == "analyze":
        from vidaffect.analytics.analyze import analyze

        return analyze
    raise AttributeError(f"module 'vidaffect' has no attribute {name!r}")
