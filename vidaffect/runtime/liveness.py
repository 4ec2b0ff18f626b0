"""Whether the supervisor process is still alive, seen from a stage process.

Stage processes are forked from a fork server, not from the supervisor, so their parent is
not the supervisor and ``os.getppid()`` says nothing about it (the fork server even outlives
the supervisor while stages hold its pipe). A stage instead checks the supervisor's pid and
start time: a pid that is gone, a zombie (killed, not yet reaped), or reused by a process
that started at another time means the supervisor died.
"""

from __future__ import annotations

import os


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
