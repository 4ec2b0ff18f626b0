"""Plugin loading: built-ins through entry points, registry rules, a pip-installed plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest
from conftest import DATA, NEEDS_DATA
from pipeline_helpers import REPO, read_events, run_cli

from vidaffect import plugin_manager as plugins
from vidaffect.api import Sink
from vidaffect.cli.plugin_info import describe_plugins, format_plugins
from vidaffect.errors import PluginError

EXAMPLE = REPO / "examples" / "vidaffect-moodlog"


def test_builtins_come_from_entry_points() -> None:
    reg = plugins.get_registry()
    assert {"video", "webcam", "stream", "images"} <= set(reg.classes["source"])
    assert {"mtcnn", "haar"} <= set(reg.classes["detector"])
    assert "fer" in reg.classes["classifier"]
    assert {"video", "display", "jsonl", "zmq_events"} <= set(reg.classes["sink"])
    assert reg.origin[("detector", "mtcnn")] == "mtcnn"  # the entry-point name
    assert plugins.distribution_of("mtcnn").startswith("vidaffect ")


def test_duplicate_and_wrong_kind_rejected() -> None:
    reg = plugins.Registry()

    class A(Sink):
        name = "a"

        def write(self, frame) -> None: ...

    reg.register("sink", A, "one")
    with pytest.raises(PluginError, match="registered twice: by one and by two"):
        reg.register("sink", A, "two")
    with pytest.raises(PluginError, match="not a Detector subclass"):
        reg.register("detector", A, "three")
    with pytest.raises(PluginError, match="unknown sink 'b'; installed sinks: a"):
        reg.get("sink", "b")


def test_misspelt_hook_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "badplugin.py").write_text(
        "import vidaffect\n@vidaffect.hookimpl\ndef register_sink(register):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VIDAFFECT_PLUGINS", "badplugin")
    plugins.reset()
    with pytest.raises(pluggy.PluginValidationError, match="register_sink"):
        plugins.get_plugin_manager()


@pytest.mark.slow
def test_extra_plugin_modules_import_errors_and_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDAFFECT_PLUGINS", "vidaffect.testing, no_such_plugin_module")
    plugins.reset()
    with pytest.raises(PluginError, match="VIDAFFECT_PLUGINS: cannot import 'no_such_plugin_module'"):
        plugins.get_registry()
    proc = run_cli("plugins", env={"VIDAFFECT_PLUGINS": "no_such_plugin_module"})
    assert proc.returncode == 1 and proc.stderr.startswith("error: VIDAFFECT_PLUGINS: cannot import")
    # a module that is also installed as an entry point is registered once, not refused
    monkeypatch.setenv("VIDAFFECT_PLUGINS", "vidaffect_plugins.capture")
    plugins.reset()
    assert plugins.get_registry().origin[("source", "video")] == "capture"


def test_block_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDAFFECT_BLOCK_PLUGINS", "haar")
    plugins.reset()
    assert "haar" not in plugins.get_registry().classes["detector"]
    assert "mtcnn" in plugins.get_registry().classes["detector"]


@pytest.mark.slow
def test_plugins_command_lists_options() -> None:
    proc = run_cli("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    mtcnn = next(p for p in info["detector"] if p["name"] == "mtcnn")
    assert {"preset", "min_face_size", "factor", "thresholds"} <= {o["name"] for o in mtcnn["options"]}


@pytest.mark.slow
@NEEDS_DATA
def test_example_plugin_installs_lists_and_runs(tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    listed = run_cli("plugins", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "moodlog" in listed.stdout and "vidaffect-moodlog 0.1.0" in listed.stdout

    csv_path, jsonl = tmp_path / "mood.csv", tmp_path / "e.jsonl"
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        json.dumps(
            {
                "source": {"type": "video", "uri": str(DATA / "videos" / "liveportrait_d0.mp4")},
                "detector": {"type": "mtcnn"},
                "classifier": {"type": "fer"},
                "sinks": [{"type": "moodlog", "path": str(csv_path)}, {"type": "jsonl", "path": str(jsonl)}],
            }
        )
    )
    proc = run_cli("run", str(cfg), "--no-status", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "stream,window_start_s,frames,faces,dominant,share"
    n_frames = len(read_events(jsonl))
    assert sum(int(r.split(",")[2]) for r in rows[1:]) == n_frames
    assert len(rows) - 1 == pytest.approx(n_frames / 25, abs=1)


PLAIN_PLUGIN = '''
import vidaffect
from vidaffect.api import Sink

class Summarised(Sink):
    name = "summarised"
    summary = "one line"
    def write(self, frame): pass

class Documented(Sink):
    """First line.

    More."""
    name = "documented"
    def write(self, frame): pass

class Bare(Sink):
    name = "bare"
    def write(self, frame): pass

@vidaffect.hookimpl
def register_sinks(register):
    register(Summarised); register(Documented); register(Bare)
'''


def test_plugins_without_docstrings_are_listed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``summary`` without a docstring, a docstring only, and neither: all listed."""
    (tmp_path / "plainplugin.py").write_text(PLAIN_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VIDAFFECT_PLUGINS", "plainplugin")
    plugins.reset()
    sinks = {row["name"]: row["summary"] for row in describe_plugins()["sink"]}
    assert (sinks["summarised"], sinks["documented"], sinks["bare"]) == ("one line", "First line.", "")
    assert "  bare " in format_plugins(describe_plugins())
