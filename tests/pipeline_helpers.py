"""Helpers for end-to-end tests: run the CLI in a subprocess, read videos and events back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from vidaffect.testing.probe import wait_until

REPO = Path(__file__).resolve().parent.parent


def vidaffect_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidaffect", *args]


def run_cli(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        vidaffect_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=REPO, env=full_env
    )


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    """Write a pipeline mapping to ``tmp_path/p.yaml`` (JSON is YAML) and return the path."""
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(data))
    return path


def face_pipeline(
    tmp_path: Path, clip: Path, sinks: list[dict[str, Any]], source: str = "video", **settings: Any
) -> Path:
    """Write a pipeline that finds, tracks and classifies the faces of ``clip`` (haar, fer,
    tracking every third frame, no status line) into ``sinks``; ``settings`` go to
    ``pipeline``, the source's ``max_frames`` defaults to 60. Returns the file's path."""
    max_frames = settings.pop("max_frames", 60)
    return write_config(
        tmp_path,
        {
            "pipeline": {"status": False, **settings},
            "source": {"type": source, "uri": str(clip), "max_frames": max_frames},
            "detector": {"type": "haar"},
            "classifier": {"type": "fer"},
            "tracking": {"detect_every": 3},
            "sinks": sinks,
        },
    )


STARTED: list[subprocess.Popen[str]] = []
"""Runs started by :func:`start_run`; conftest kills those still alive after each test."""


def start_run(
    cfg: Path, *args: str, env: dict[str, str] | None = None, stderr: Any = None
) -> subprocess.Popen[str]:
    """``vidaffect run CFG --no-status ARGS`` in the background, output captured (``stderr``:
    an open file to write it to instead), ``env`` added to the environment. A run the test
    leaves behind (a failed ``wait_for``) is killed after the test (see conftest)."""
    proc = subprocess.Popen(
        vidaffect_cmd("run", str(cfg), "--no-status", *args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    STARTED.append(proc)
    return proc


def stop_leftover_runs() -> None:
    """Kill the runs a test started and left running (SIGTERM, then SIGKILL), and close their
    pipes, so that one failed test does not leak processes or warnings into the next."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120, every: float = 0.05) -> None:
    """Poll ``predicate`` until it holds (:func:`vidaffect.testing.probe.wait_until`, with a
    pipeline's start-up in the default ``timeout``).

    Raises:
        AssertionError: it did not hold within ``timeout`` seconds.
    """
    wait_until(predicate, what, timeout, every)


def line_count(path: Path) -> int:
    """Lines in ``path`` so far (0 when it does not exist yet)."""
    return path.read_text().count("\n") if path.exists() else 0


def video_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    cap.release()
    return fps


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
