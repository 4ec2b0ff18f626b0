"""Shared fixtures: the data folder, a pipeline-file writer, a tiny checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pipeline_helpers import stop_leftover_runs

from vidaffect.sample_data import data_dir

DATA = data_dir()
NEEDS_DATA = pytest.mark.skipif(
    not (DATA / "videos").is_dir(),
    reason=f"needs the shared data folder (set VIDAFFECT_DATA; looked in {DATA})",
)


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a pipeline mapping to ``tmp_path/pipeline.yaml`` and return its path."""

    def write(data: dict[str, Any], name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture(autouse=True)
def _test_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the testing plugins available in this process and in spawned stages."""
    from vidaffect import plugin_manager as plugins

    monkeypatch.setenv("VIDAFFECT_PLUGINS", "vidaffect.testing")
    plugins.reset()
    yield
    plugins.reset()
    stop_leftover_runs()
