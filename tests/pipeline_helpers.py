"""Helpers for end-to-end tests: run the CLI in a subprocess, read videos and events back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2

REPO = Path(__file__).resolve().parent.parent


def vidaffect_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidaffect.cli", *args]


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(vidaffect_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=full_env)


def video_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """Frames decodable from ``path`` (counted by reading) and ``(width, height)``."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot open {path}"
    n, size = 0, (0, 0)
    while True:
        ok, img = cap.read()
        if not ok:
            break
        n += 1
        size = (img.shape[1], img.shape[0])
    cap.release()
    return n, size


def read_events(path: Path, kind: str = "frame") -> list[dict[str, Any]]:
    """Events of one ``type`` (``frame`` or ``change``) from a jsonl sink's file."""
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e["type"] == kind]


def clip_frames(path: Path) -> int:
    return video_frames(path)[0]
