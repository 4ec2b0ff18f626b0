"""Logging and errors: the engine logs through `logging`; the CLI prints user-facing lines and
shows tracebacks only with --debug; exit codes come from the error class."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pipeline_helpers import run_cli, write_config

from vidaffect.errors import ConfigError, SinkError, SourceError, StageError, VidaffectError
from vidaffect.runtime.logs import DEBUG_ENV, configure


@pytest.mark.parametrize(
    ("error", "code"),
    [(ConfigError, 2), (SourceError, 1), (SinkError, 1), (StageError, 1), (VidaffectError, 1)],
)
def test_exit_codes_come_from_the_error_class(error: type[VidaffectError], code: int) -> None:
    assert error.exit_code == code


def test_configure_routes_the_engine_loggers_and_tells_the_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_ENV, "0")  # recorded, so the test leaves the environment as it was
    saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level)
        for n in ("vidaffect", "vidaffect_plugins")
    }
    try:
        configure(False)
        assert logging.getLogger("vidaffect").level == logging.INFO
        assert logging.getLogger("vidaffect_plugins.capture").getEffectiveLevel() == logging.INFO
        configure(True)
        assert logging.getLogger("vidaffect").level == logging.DEBUG
        assert __import__("os").environ[DEBUG_ENV] == "1"  # inherited by the stage processes
    finally:
        for name, (handlers, level) in saved.items():
            logging.getLogger(name).handlers, logging.getLogger(name).level = handlers, level


def _unreadable_video_pipeline(tmp_path: Path) -> Path:
    fake = tmp_path / "not_a_video.mp4"
    fake.write_text("this is text, not a video\n")
    return write_config(
        tmp_path,
        {
            "source": {"type": "video", "uri": str(fake)},
            "sinks": [{"type": "jsonl", "path": str(tmp_path / "e.jsonl")}],
        },
    )


@pytest.mark.slow
def test_tracebacks_only_with_debug(tmp_path: Path) -> None:
    cfg = _unreadable_video_pipeline(tmp_path)
    plain = run_cli("run", str(cfg), timeout=120)
    debug = run_cli("--debug", "run", str(cfg), timeout=120)
    for proc in (plain, debug):
        assert proc.returncode == 1
        assert "not_a_video.mp4" in proc.stderr and "error: " in proc.stderr
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr and "SourceError" in debug.stderr


@pytest.mark.slow
def test_a_config_error_exits_2_and_names_the_key(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        {"source": {"type": "video", "uri": __file__, "fpss": 3}, "sinks": [{"type": "jsonl", "path": "x"}]},
    )
    proc = run_cli("run", str(cfg), timeout=60)
    assert proc.returncode == 2
    assert "stage 'source' › fpss: unknown key (did you mean 'fps'?)" in proc.stderr
    assert "Traceback" not in proc.stderr
