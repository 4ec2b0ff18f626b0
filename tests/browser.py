"""A headless Chromium (Debian's ``chromium``, driven by Playwright) and a static HTTP server
on 127.0.0.1, both started by the test and stopped by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright


NEEDS_BROWSER = pytest.mark.skipif(
    CHROMIUM is None or _playwright() is None,
    reason="needs Debian's chromium (apt-get install chromium, or make browser-deps) and the "
    "playwright package (pip install -e '.[dev]')",
)


@contextmanager
def http_server(folder: Path) -> Iterator[str]:
    """``python -m http.server`` serving ``folder`` on a free 127.0.0.1 port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"http.server on port {port} did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A page of a headless Chromium (no downloads: the system's browser binary)."""
    sync_playwright = _playwright()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


PLAY_VIDEO = """(src) => new Promise(resolve => {
    const v = document.createElement('video');
    v.muted = true;
    v.onloadeddata = () => resolve({width: v.videoWidth, height: v.videoHeight, duration: v.duration});
    v.onerror = () => resolve({error: v.error ? v.error.code : -1});
    v.src = src;
    document.body.appendChild(v);
})"""
"""JavaScript: load a video by URL; its size and duration, or the MediaError code."""
