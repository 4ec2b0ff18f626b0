"""The runnable examples under examples/ work as their docstrings say (real video, real models)."""

from __future__ import annotations

import ast
import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, NEEDS_DATA
from test_sinks import Publisher

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.slow


def run_example(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "run_from_python.py"), *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


@NEEDS_DATA
def test_run_from_python_runs_a_pipeline_and_reads_its_events(tmp_path: Path) -> None:
    proc = run_example(str(DATA / "videos" / "liveportrait_d11.mp4"), str(tmp_path), "--max-frames", "12")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sink-0-jsonl in    12  out    12" in proc.stdout
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    frames = [e for e in events if e["type"] == "frame"]
    assert [e["seq"] for e in frames] == list(range(12))
    assert all(len(e["faces"]) == 1 and e["faces"][0]["emotion"]["label"] in e["labels"] for e in frames)
    printed = ast.literal_eval(proc.stdout.rsplit("emotions per face and frame: ", 1)[1].strip())
    assert printed == collections.Counter(e["faces"][0]["emotion"]["label"] for e in frames)


def test_run_from_python_reports_a_missing_clip(tmp_path: Path) -> None:
    proc = run_example(str(tmp_path / "none.mp4"), str(tmp_path))
    assert proc.returncode == 1
    assert "stage 'source' › uri: video file not found" in proc.stdout
    assert not (tmp_path / "events.jsonl").exists()


def test_subscriber_prints_one_stream_and_stops_quietly_on_ctrl_c() -> None:
    """examples/subscriber.py against a real PUB socket sending cam1 and cam10: only cam1's
    events are printed, and Ctrl-C (SIGINT) ends it with exit 0 and no traceback."""
    with Publisher(["cam10", "cam1"]) as pub:
        # as from a terminal: SIGINT at its default even when this test runs as a background
        # job (whose shell ignores SIGINT, and children inherit that)
        script = EXAMPLES / "subscriber.py"
        as_from_a_terminal = (
            "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", as_from_a_terminal, str(script), pub.endpoint, "cam1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            first = proc.stdout.readline()  # blocks until events flow
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.communicate()
    lines = [first, *out.splitlines()]
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert len(lines) > 3 and all(line.split()[0] == "cam1" for line in lines)
