"""Where vidaffect looks for sample data.

``VIDAFFECT_DATA`` points at a data folder holding ``videos/``, ``photos/``, ``fer2013/`` and
``emotic/``; by default ``../shared/data`` next to the source checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The data folder (it may not exist; callers check)."""
    env = os.environ.get("VIDAFFECT_DATA")
    return Path(env).expanduser() if env else (REPO_ROOT.parent / "shared" / "data")
