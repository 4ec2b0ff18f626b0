"""Stage workers as Ray actors (``pipeline.runner: ray``; ``pip install vidaffect[ray]``).

One actor per stage worker, placed by Ray from the stage's ``placement`` (resources, GPUs,
node labels). The actor runs the same :func:`~vidaffect.runtime.stage.run_stage` a local worker
process runs: its input binds on its node's address (``tcp://NODE_IP:*``), the supervisor sends
the wiring, frames travel on ZeroMQ tcp (CurveZMQ with the run's keys unless ``auth: none``),
never through Ray's object store. Control and updates stay on the supervisor's ZeroMQ sockets.

Unless its ``placement`` says otherwise, a detector worker is placed on the node of the source
it gets frames from, so a camera's frames stay on its node and only faces travel: whole
frames when a sink needs pixels, else face patches (:mod:`.patches`).

Faults: a stage with ``on_error: restart`` is created with Ray's ``max_restarts`` equal to its
``max_restarts``, so Ray restarts a killed actor, on another node when its node is gone; the
supervisor then starts the stage again in it (:meth:`RayRunner.start`), and the stages that
feed it reconnect to its new endpoint. A stage no node can take ends the run before anything
starts, naming the stage and what it asked for (:func:`check_placeable`).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from vidaffect.config import PipelineConfig, StageConfig
from vidaffect.config.settings import Placement
from vidaffect.errors import PluginError, StageError
from vidaffect.runtime.addresses import is_loopback
from vidaffect.runtime.graph import Launch, StageSpec, WorkerSpec

log = logging.getLogger(__name__)

ENV_PREFIXES = ("VIDAFFECT_", "OPENCV_", "OMP_", "MALLOC_")
"""Environment variables of the supervisor that reach the actors (Ray's own stay as Ray set
them on each node)."""


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        PluginError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise PluginError(
            "pipeline › runner: 'ray' needs Ray on every host: pip install 'vidaffect[ray]'"
        ) from None
    return ray


class StageActor:
    """The Ray actor of one stage worker (created by :class:`RayRunner` through
    ``ray.remote``). ``run`` blocks in one of the actor's threads while the stage runs;
    ``where`` answers beside it."""

    def __init__(self, run_id: str) -> None:
        import ray

        node = ray.get_runtime_context().get_node_id()[:16]  # node-local, as on separate hosts
        self.run_prefix = os.path.join(tempfile.gettempdir(), f"vidaffect-ray-{run_id}-")
        self.run_dir = self.run_prefix + node
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)

    def where(self) -> dict[str, Any]:
        """This actor's node: ``node_id`` (Ray's hex id), ``ip`` and the process ``pid``."""
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
        }

    def run(self, spec: StageSpec, launch: Launch) -> int:
        """Run the stage to its end; its exit code (see :func:`~.stage.run_stage`)."""
        import ray

        from vidaffect.runtime.stage import run_stage

        if spec.input is not None:
            spec = dataclasses.replace(spec, input=f"tcp://{ray.util.get_node_ip_address()}:*")
        os.environ.update({k: v for k, v in launch.environ.items() if k.startswith(ENV_PREFIXES)})
        launch = dataclasses.replace(launch, supervisor=None, run_dir=self.run_dir, environ={})
        return run_stage(spec, launch)

    def clean_up(self) -> None:
        """Remove the run's folders on this host (a source's sequence file): its node's, and
        those of the run's nodes that went away on the same host."""
        for path in glob.glob(glob.escape(self.run_prefix) + "*"):
            shutil.rmtree(path, ignore_errors=True)


class RayWorker:
    """A stage worker running in a Ray actor, as the supervisor watches it
    (:class:`~vidaffect.runtime.runners.WorkerHandle`)."""

    def __init__(self, ray: Any, actor: Any, done: Any) -> None:
        self.ray, self.actor, self.done = ray, actor, done
        self._code: int | None = None

    @property
    def pid(self) -> int | None:
        return None  # on another host, maybe: updates carry the incarnation instead

    @property
    def exitcode(self) -> int | None:
        if self._code is None and self.ray.wait([self.done], timeout=0)[0]:
            try:
                self._code = int(self.ray.get(self.done))
            except self.ray.exceptions.RayError:  # the actor died: killed, or its node is gone
                self._code = -9
        return self._code

    def is_alive(self) -> bool:
        return self.exitcode is None

    def terminate(self) -> None:
        self.kill()

    def kill(self) -> None:
        self.ray.kill(self.actor, no_restart=True)

    def join(self, timeout: float | None = None) -> None:
        self.ray.wait([self.done], timeout=timeout)


def reachable_gcs(ray: Any, address: str, timeout: float = 5.0) -> str | None:
    """The ``HOST:PORT`` of the cluster's GCS for ``address``, checked with a TCP connection;
    for ``auto`` (``RAY_ADDRESS``, or the cluster ``ray start`` runs on this machine), None
    when there is none or it does not answer: the run then starts a cluster of its own.

    Raises:
        PluginError: a ``HOST:PORT`` that does not answer within ``timeout`` seconds.
    """
    given = address
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            found = canonicalize_bootstrap_address("auto")
        except (ConnectionError, ValueError):
            found = None
        if not found:
            log.info("no Ray cluster runs on this machine: starting one for this run")
            return None
        address = found
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        if given == "auto":
            log.warning("the Ray cluster at %s does not answer: starting one for this run", address)
            return None
        raise PluginError(
            f"pipeline › ray › address: the Ray cluster at {address} does not answer "
            f"({exc.strerror or exc}); is `ray start` running there?"
        ) from None
    return address


def _matches(node: Mapping[str, Any], placement: Placement) -> bool:
    resources = node.get("Resources") or {}
    labels = node.get("Labels") or {}
    return all(resources.get(k, 0) >= v for k, v in placement.demands().items()) and all(
        labels.get(k) == v for k, v in placement.labels.items()
    )


def check_placeable(stages: Sequence[StageConfig], nodes: Sequence[Mapping[str, Any]]) -> None:
    """Check that some alive node of ``nodes`` (``ray.nodes()``) has what each stage's
    ``placement`` asks for.

    Raises:
        PluginError: naming the first stage no node can take and what it asked for.
    """
    alive = [n for n in nodes if n.get("Alive")]
    for stage in stages:
        placement = stage.options.placement
        if placement is None or any(_matches(n, placement) for n in alive):
            continue
        wants = [f"{k}: {v:g}" for k, v in placement.demands().items()]
        wants += [f"label {k}={v}" for k, v in placement.labels.items()]
        raise PluginError(
            f"stage {stage.name!r} cannot be placed: no node of the Ray cluster "
            f"({len(alive)} alive) has {', '.join(wants)}"
        )


def check_exposure(config: PipelineConfig, nodes: Sequence[Mapping[str, Any]]) -> None:
    """Refuse ``auth: none`` on a cluster with a node beyond loopback (frames, faces included,
    would cross the network in the clear) unless ``insecure: true``.

    Raises:
        PluginError: naming the nodes' addresses.
    """
    engine = config.engine
    if engine.auth != "none" or engine.insecure:
        return
    addresses = {str(n.get("NodeManagerAddress")) for n in nodes if n.get("Alive")}
    exposed = sorted(a for a in addresses if not is_loopback(a))
    if exposed:
        raise PluginError(
            f"pipeline › auth: 'none' would send frames in the clear between the Ray nodes at "
            f"{', '.join(exposed)}: keep auth: curve (the default), or set insecure: true to "
            "accept the risk"
        )


class RayRunner:
    """Starts each stage worker in its own Ray actor (see the module docstring).

    Args:
        config: the pipeline (``pipeline.ray`` and each stage's ``placement``).

    Raises:
        PluginError: Ray is not installed, the cluster cannot be reached, or a stage cannot be
            placed.
    """

    def __init__(self, config: PipelineConfig) -> None:
        self.ray = ray = import_ray()
        self.settings = config.engine.ray
        self.run_id = uuid.uuid4().hex[:12]
        address = self.settings.address
        self._started = not ray.is_initialized()
        if self._started:
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
            gcs = None if address == "local" else reachable_gcs(ray, address)
            if gcs is None:  # a cluster of this machine only, for this run, on loopback
                options["_node_ip_address"] = "127.0.0.1"
                os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # else Ray rewrites it
            try:
                ray.init(address=gcs or "local", configure_logging=False, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise PluginError(
                    f"pipeline › ray › address: cannot join the Ray cluster at {address!r}: {exc}"
                ) from None
        nodes = ray.nodes()
        check_placeable(config.stages, nodes)
        check_exposure(config, nodes)
        self.host = ray.util.get_node_ip_address()
        self.actors: dict[str, Any] = {}  # by worker label
        self.source_of = {str(s.stream): s.name for s in config.sources}  # stream id -> source label
        self.sticky = config.tracking is not None
        self._remote = ray.remote(StageActor)

    def _create(self, ws: WorkerSpec) -> Any:
        opts = ws.stage.options
        placement = opts.placement or Placement.model_validate({})
        options: dict[str, Any] = {
            "max_concurrency": 2,  # ``run`` blocks; ``where`` answers beside it
            "max_restarts": opts.max_restarts if opts.on_error == "restart" else 0,
            "name": f"vidaffect-{self.run_id}-{ws.spec.stage}-{ws.worker}",
        }
        # no CPU reserved unless asked: Ray would hold one per actor given other options, and a
        # two-core node could then not take a pipeline's five workers
        options["num_cpus"] = placement.num_cpus or 0
        if placement.num_gpus is not None:
            options["num_gpus"] = placement.num_gpus
        if placement.resources:
            options["resources"] = dict(placement.resources)
        if placement.labels:
            options["label_selector"] = dict(placement.labels)
        near = self._source_node(ws) if opts.placement is None and ws.stage.kind == "detector" else None
        if near is not None:  # beside its camera's source: only faces leave the node
            log.debug("%s: placed on node %s, beside its source", ws.label, near)
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            # hard: a soft affinity was not always honoured (ray 2.60, two nodes of one machine)
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(near, soft=False)
        return self._remote.options(**options).remote(self.run_id)

    def _source_node(self, ws: WorkerSpec) -> str | None:
        """The node of the source whose frames detector worker ``ws`` gets: the first stream
        sent to it (with tracking, stream ``i`` keeps to worker ``i % workers``), or source
        ``worker % sources`` (frames load-balanced, without)."""
        spec = ws.spec
        if self.sticky:
            streams = [s for s in spec.streams if spec.stream_key(s) % spec.workers == spec.worker]
        else:
            streams = [spec.streams[spec.worker % len(spec.streams)]]
        actor = next((self.actors.get(self.source_of[s]) for s in streams if s in self.source_of), None)
        if actor is None:
            return None
        try:
            return str(self.ray.get(actor.where.remote(), timeout=self.settings.placement_timeout)["node_id"])
        except self.ray.exceptions.RayError:
            return None

    def start(self, ws: WorkerSpec, launch: Launch) -> RayWorker:
        """Start the worker in its actor: a new actor the first time; the same actor (which Ray
        restarted if it died) on a restart.

        Raises:
            StageError: the actor could not be (re)placed within ``placement_timeout``, or Ray
                gave up restarting it.
        """
        actor = self.actors.get(ws.label)
        if actor is None:
            actor = self.actors[ws.label] = self._create(ws)
        else:
            self._wait_alive(actor, ws.label)
        return RayWorker(self.ray, actor, actor.run.remote(ws.spec, launch))

    def _wait_alive(self, actor: Any, name: str) -> None:
        """Until Ray has restarted ``actor`` (it answers ``where``)."""
        ray = self.ray
        deadline = time.monotonic() + self.settings.placement_timeout
        while True:
            try:
                ray.get(actor.where.remote(), timeout=max(0.1, deadline - time.monotonic()))
                return
            except ray.exceptions.ActorUnavailableError:  # restarting
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            except ray.exceptions.GetTimeoutError:
                break
            except ray.exceptions.ActorDiedError as exc:
                raise StageError(f"stage {name}: Ray could not restart its actor: {exc}") from None
        raise StageError(
            f"stage {name}: not placed again within {self.settings.placement_timeout:g} s "
            "(no alive node has the resources or labels it needs)"
        )

    def placement(self) -> list[tuple[str, dict[str, Any]]]:
        """Where each worker runs now: (its label, :meth:`StageActor.where`)."""
        refs = {label: a.where.remote() for label, a in self.actors.items()}  # in flow order
        out = []
        for label, ref in refs.items():
            try:
                out.append((label, self.ray.get(ref, timeout=10)))
            except self.ray.exceptions.RayError:
                out.append((label, {}))
        return out

    def close(self) -> None:
        """Remove the workers' run folders, end every actor, and leave the cluster (stopping
        it when this run started it, ``address: local``)."""
        ray = self.ray
        refs = [a.clean_up.remote() for a in self.actors.values()]
        try:
            ray.wait(refs, num_returns=len(refs), timeout=5)
        except ray.exceptions.RayError:
            pass
        for actor in self.actors.values():
            ray.kill(actor, no_restart=True)
        self.actors.clear()
        if self._started:
            ray.shutdown()


def placement_lines(placed: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """One line per worker: ``detector[0] -> 10.0.0.7 (node 3f2a9c01, pid 4242)``."""
    width = max((len(label) for label, _ in placed), default=0)
    return [
        f"{label:<{width}} -> {where.get('ip', '?')} "
        f"(node {str(where.get('node_id', '?'))[:8]}, pid {where.get('pid', '?')})"
        for label, where in placed
    ]
