"""Whether the supervisor process is still alive, seen from a stage process.

Stage processes are forked from a fork server, not from the supervisor, so their parent is
not the supervisor and ``os.getppid()`` says nothing about it (the fork server even outlives
the supervisor while stages hold its pipe). A stage instead checks the supervisor's pid and
start time: a pid that is gone, a zombie (killed, not yet reaped), or reused by a process
that started at another time means the supervisor died.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path


def _start_and_state(pid: int) -> tuple[int, str] | None:
    """``(start time in clock ticks since boot, state letter)`` from ``/proc/PID/stat`` (Linux),
    or None when there is no such process or no ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return int(fields[19]), fields[0]


def process_identity(pid: int | None = None) -> tuple[int, int | None]:
    """``(pid, start time)`` of a process (default: this one), for :func:`is_alive`; the start
    time is None where ``/proc`` does not exist."""
    pid = os.getpid() if pid is None else pid
    found = _start_and_state(pid)
    return pid, None if found is None else found[0]


def is_alive(identity: tuple[int, int | None]) -> bool:
    """Whether the process of ``identity`` (:func:`process_identity`) still runs."""
    pid, start = identity
    if start is None:  # no /proc: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    found = _start_and_state(pid)
    return found is not None and found[0] == start and found[1] not in ("Z", "X")


OWNER_FILE = "owner"


def claim_run_dir(run_dir: Path) -> None:
    """Record this process as the owner of ``run_dir`` (its pid and start time), so that a
    later run can tell the folder of a supervisor that was killed from a live one's."""
    pid, start = process_identity()
    (run_dir / OWNER_FILE).write_text(f"{pid} {start if start is not None else ''}".strip())


def reclaim_stale_run_dirs(parent: Path, prefix: str = "vidaffect-") -> list[Path]:
    """Remove the run folders (ipc sockets) under ``parent`` whose owning supervisor is gone
    (killed before it could clean up); the folders removed. Folders without an owner file, or
    not readable, are left alone."""
    removed = []
    for folder in parent.glob(f"{prefix}*"):
        try:
            fields = (folder / OWNER_FILE).read_text().split()
            owner = (int(fields[0]), int(fields[1]) if len(fields) > 1 else None)
        except (OSError, ValueError, IndexError):
            continue
        if not is_alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def start_watchdog(
    supervisor: tuple[int, int | None], in_loop: threading.Event, every_s: float = 0.25, grace_s: float = 10.0
) -> threading.Thread:
    """A daemon thread that ends this stage process when its supervisor dies.

    Before the stage's loop runs (imports, models loading: the main thread cannot look) the
    process exits at once; once ``in_loop`` is set, the loop notices by itself and finalises its
    files, and the watchdog exits the process only if that has not happened ``grace_s`` later
    (a plugin call that hangs).
    """

    def watch() -> None:
        dead_since = None
        while True:
            time.sleep(every_s)
            if is_alive(supervisor):
                continue
            now = time.monotonic()
            dead_since = dead_since or now
            if not in_loop.is_set() or now - dead_since > grace_s:
                os._exit(1)

    thread = threading.Thread(target=watch, name="supervisor-watchdog", daemon=True)
    thread.start()
    return thread
