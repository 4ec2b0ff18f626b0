"""Waiting for something to hold, with a deadline (instead of a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0, every: float = 0.02) -> None:
    """Poll ``predicate`` every ``every`` seconds until it holds.

    Raises:
        AssertionError: it did not hold within ``timeout`` seconds (the message names ``what``).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
