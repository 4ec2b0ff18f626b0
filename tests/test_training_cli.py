"""``vidaffect train|evaluate|compare|export|stats``: the installed training commands, run as a
user runs them (the console script, from a folder outside the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_trainers import FER_LABELS, TRAIN_ARGS, write_folder
from vidaffect.models.zoo import WEIGHTS_DIR

VIDAFFECT = shutil.which("vidaffect", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.slow


def vidaffect(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert VIDAFFECT, f"the vidaffect console script is not installed beside {sys.executable}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as installed, not the checkout
    return subprocess.run(
        [VIDAFFECT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    write_folder(root / "train", {n: 6 for n in FER_LABELS})
    write_folder(root / "test", {n: 2 for n in FER_LABELS}, seed=1)
    return root


def test_help_of_each_command_names_it_and_the_task(tmp_path: Path) -> None:
    for command in ("train", "evaluate", "compare", "export", "stats"):
        done = vidaffect(command, "--help", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: vidaffect {command} "), done.stdout[:200]
        assert "--task" in done.stdout
    emotic = vidaffect("train", "--task", "emotic", "--help", cwd=tmp_path).stdout
    assert "--backbone" in emotic and "--backbone" not in vidaffect("train", "--help", cwd=tmp_path).stdout


def test_a_task_without_the_command_is_a_usage_error(tmp_path: Path) -> None:
    done = vidaffect("stats", "--task", "fer2013", "x.csv", cwd=tmp_path)
    assert done.returncode == 2 and "--task emotic has" in done.stderr
    done = vidaffect("train", "--task", "affectnet", cwd=tmp_path)
    assert done.returncode == 2 and "fer2013, emotic" in done.stderr


def test_train_evaluate_export_from_another_folder(faces: Path, tmp_path: Path) -> None:
    """The whole cycle in a folder outside the checkout, on relative paths; reports go to the
    current folder, and the checkpoints get the same mode as any other file written there."""
    shipped_before = sorted(p.name for p in WEIGHTS_DIR.iterdir())
    done = vidaffect(
        "train", "--data", str(faces), "--out", "run", "--epochs", "1", *TRAIN_ARGS, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    best = tmp_path / "run" / "best.safetensors"
    assert done.stdout.strip().endswith("run/best.safetensors") and best.is_file()
    (tmp_path / "plain.txt").write_text("x")
    mode = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert stat.S_IMODE(best.stat().st_mode) == mode

    done = vidaffect("evaluate", "--checkpoint", "run", "--data", str(faces), "--threads", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 14
    assert (tmp_path / f"report-run-{faces.name}-test" / "metrics.json").is_file()

    done = vidaffect("export", "run/best.safetensors", "small.safetensors", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "small.safetensors").stat().st_mode) == mode
    assert sorted(p.name for p in WEIGHTS_DIR.iterdir()) == shipped_before


def test_evaluate_accepts_shipped_names_and_reports_here(faces: Path, tmp_path: Path) -> None:
    shipped_before = sorted(p.name for p in WEIGHTS_DIR.iterdir())
    done = vidaffect(
        "evaluate", "--checkpoint", "default", "--data", str(faces), "--threads", "1", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["checkpoint"].endswith("fer2013-resnet18.safetensors") and result["n"] == 14
    assert (tmp_path / f"report-fer2013-resnet18-{faces.name}-test" / "gallery.png").is_file()
    assert sorted(p.name for p in WEIGHTS_DIR.iterdir()) == shipped_before  # nothing in the package
    done = vidaffect("evaluate", "--checkpoint", "resnet99", "--data", str(faces), cwd=tmp_path)
    assert (
        done.returncode == 1
        and "neither a shipped model (default, accurate, alexnet, resnet18, robust)" in done.stderr
    )


def test_a_missing_train_extra_is_named(tmp_path: Path) -> None:
    """Without scikit-learn (not a dependency of pipelines), EMOTIC evaluation says which extra
    to install instead of printing a traceback."""
    code = (
        "import sys; sys.modules['sklearn'] = None; from vidaffect.cli.main import main; "
        "sys.argv = ['vidaffect', 'evaluate', '--task', 'emotic', '--checkpoint', 'x', '--annotations', 'y']; "
        "main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "scikit-learn" in done.stderr and "pip install 'vidaffect[train]'" in done.stderr
    assert "Traceback" not in done.stderr
