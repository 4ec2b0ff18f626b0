"""Where stage workers run: the supervisor asks a runner to start each worker (and again to
restart it) and watches it through a :class:`WorkerHandle`; the runner owns how.

:class:`LocalRunner` forks each worker from a multiprocessing fork server on this machine. Frames,
control and updates travel on ZeroMQ whatever the runner, so the supervisor's logic (states,
EOS, release, restarts, counters) does not depend on it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Sequence
from typing import Any, Protocol

from vidaffect.runtime.graph import Launch, StageSpec
from vidaffect.runtime.transport import use_stage_malloc_settings


class WorkerHandle(Protocol):
    """A started worker, as the supervisor watches and stops it (a ``multiprocessing.Process``
    is one)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class Runner(Protocol):
    """Starts stage workers."""

    def start(self, spec: StageSpec, launch: Launch, name: str) -> WorkerHandle:
        """Start one worker of ``spec`` (``spec.restarts`` > 0: a restart); ``name`` labels it."""
        ...


def start_stage_server(preload: Sequence[str] = ()) -> Any:
    """Start (once per process) the fork server that stage processes are forked from, and
    return its multiprocessing context.

    The server imports ``preload`` (the heavy modules of the pipeline's plugins, their
    :attr:`~vidaffect.api.Plugin.preload`: torch, MTCNN's library) and then
    :mod:`vidaffect.runtime.preload` (numpy, OpenCV, ZeroMQ, the engine) once, so stages start
    without importing them again; with ``spawn`` every stage imported them itself. The first
    call decides what the server preloads for the life of the process. ``python -m
    benchmarks.startup`` measures it (``VIDAFFECT_START_METHOD=spawn`` there selects the
    old way). Stage processes get the supervisor's environment of the moment they start
    (:func:`vidaffect.runtime.stage.stage_main`), and malloc settings
    (:data:`~vidaffect.runtime.transport.MALLOC_ENV`) from the server's start.
    """
    use_stage_malloc_settings()
    if os.environ.get("VIDAFFECT_START_METHOD") == "spawn":  # for benchmarks.startup
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([*dict.fromkeys(preload), "vidaffect.runtime.preload"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return ctx


class LocalRunner:
    """Workers as processes of this machine, forked from the fork server (see
    :func:`start_stage_server`, started here with the plugins' ``preload`` modules)."""

    def __init__(self, preload: Sequence[str] = ()) -> None:
        self.ctx = start_stage_server(preload)

    def start(self, spec: StageSpec, launch: Launch, name: str) -> WorkerHandle:
        from vidaffect.runtime.stage import stage_main

        proc = self.ctx.Process(target=stage_main, args=(spec, launch), name=name)
        proc.start()
        return proc
