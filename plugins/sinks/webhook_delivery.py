"""Delivering webhook POSTs off the pipeline's thread: a bounded queue that drops the oldest, a
sender thread with retries and backoff, and an HMAC-SHA256 signature (httpx)."""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Vidaffect-Signature"
TIMESTAMP_HEADER = "X-Vidaffect-Timestamp"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``TIMESTAMP.BODY`` with ``secret``. The receiver
    recomputes it and rejects a mismatch, and an old timestamp (a replayed request)."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass
class DeliveryCounters:
    """``posted``: delivered (2xx); ``failed``: given up after the retries, or refused with a
    4xx; ``dropped``: pushed out of the full queue (the oldest first) or still queued when the
    sink closed."""

    posted: int = 0
    failed: int = 0
    dropped: int = 0


class Delivery:
    """POSTs JSON bodies to ``url`` from its own thread; :meth:`submit` never blocks.

    Args:
        url: the endpoint (http or https).
        timeout_s: per attempt (connect and read).
        retries: attempts after the first, on a connection error, a timeout, 429 or 5xx, after
            0.5, 1, 2, ... seconds (doubling, at most 30).
        queue_size: bodies waiting at most; a new one pushes out the oldest (counted dropped).
        secret: HMAC key; None sends no signature.
    """

    def __init__(
        self, url: str, timeout_s: float, retries: int, queue_size: int, secret: bytes | None
    ) -> None:
        self.url, self.retries, self.secret = url, retries, secret
        self.counters = DeliveryCounters()
        self._queue: collections.deque[bytes] = collections.deque()
        self._size = queue_size
        self._cond = threading.Condition()
        self._closing = False
        self._client = httpx.Client(timeout=timeout_s, headers={"User-Agent": "vidaffect-webhook"})
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def submit(self, body: bytes) -> None:
        """Queue one JSON body (drops the oldest when the queue is full)."""
        with self._cond:
            if len(self._queue) >= self._size:
                self._queue.popleft()
                self.counters.dropped += 1
            self._queue.append(body)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                body = self._queue.popleft()
            if self._post(body):
                self.counters.posted += 1
            else:
                self.counters.failed += 1

    def _post(self, body: bytes) -> bool:
        delay = 0.5
        for attempt in range(self.retries + 1):
            headers = {"Content-Type": "application/json"}
            if self.secret is not None:
                ts = str(int(time.time()))
                headers[TIMESTAMP_HEADER] = ts
                headers[SIGNATURE_HEADER] = sign(self.secret, ts, body)
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return True
                why = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    log.warning("webhook sink: %s refused an event (%s); not retried", self.url, why)
                    return False
            if attempt < self.retries:
                with self._cond:  # wait, but wake at once when the sink closes
                    if self._cond.wait_for(lambda: self._closing, timeout=delay):
                        return False
                delay = min(delay * 2, 30.0)
        log.warning("webhook sink: %s: gave up after %d attempts (%s)", self.url, self.retries + 1, why)
        return False

    def close(self, drain_s: float) -> None:
        """Deliver what is queued for up to ``drain_s`` seconds, then stop; what is left is
        counted as dropped."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue:
                    break
            time.sleep(0.02)
        with self._cond:
            self.counters.dropped += len(self._queue)
            self._queue.clear()
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=drain_s + 1)
        self._client.close()
