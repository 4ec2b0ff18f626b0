"""Where stage workers run: the supervisor asks a runner to start each worker (and again to
restart it) and watches it through a :class:`WorkerHandle`; the runner owns how.

:class:`LocalRunner` forks each worker from a multiprocessing fork server on this machine;
:class:`~vidaffect.runtime.ray_runner.RayRunner` (``pipeline.runner: ray``) starts each in a Ray
actor, wherever the cluster places it. Frames, control and updates travel on ZeroMQ whatever
the runner, so the supervisor's logic (states, wiring, EOS, release, restarts, counters) does
not depend on it.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Sequence
from typing import Any, Protocol

from vidaffect.config import PipelineConfig
from vidaffect.runtime.graph import Launch, WorkerSpec
from vidaffect.runtime.transport import use_stage_malloc_settings

log = logging.getLogger(__name__)


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
    """Starts stage workers.

    Attributes:
        host: the address the supervisor binds its control and updates sockets to (tcp),
            reachable from every worker.
    """

    host: str

    def start(self, ws: WorkerSpec, launch: Launch) -> WorkerHandle:
        """Start one worker (``ws.spec.restarts`` > 0: a restart).

        Raises:
            StageError: the worker could not be started (a runner that places it elsewhere
                found no place).
        """
        ...

    def placement(self) -> list[tuple[str, dict[str, Any]]]:
        """Where each worker runs (label, ``{"ip", "node_id", "pid"}``); empty when all run here."""
        ...

    def close(self) -> None:
        """Release what the runner holds, once every worker has ended."""
        ...


def make_runner(config: PipelineConfig, preload: Sequence[str] = ()) -> Runner:
    """The runner ``pipeline.runner`` names.

    Raises:
        PluginError: ``ray``, and Ray is missing, unreachable, or cannot place a stage.
    """
    if config.engine.runner == "ray":
        from vidaffect.runtime.ray_runner import RayRunner

        return RayRunner(config)
    for stage in config.stages:
        if stage.options.placement is not None:
            log.warning("stage %s: placement applies with runner ray only; this run is local", stage.name)
    return LocalRunner(preload, config.engine.host)


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

    def __init__(self, preload: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        self.ctx = start_stage_server(preload)
        self.host = host

    def start(self, ws: WorkerSpec, launch: Launch) -> WorkerHandle:
        from vidaffect.runtime.stage import stage_main

        proc = self.ctx.Process(target=stage_main, args=(ws.spec, launch), name=ws.label)
        proc.start()
        return proc

    def placement(self) -> list[tuple[str, dict[str, Any]]]:
        return []

    def close(self) -> None:
        pass
