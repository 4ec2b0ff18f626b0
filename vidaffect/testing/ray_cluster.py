"""A Ray cluster of this machine for tests and benchmarks of ``pipeline.runner: ray``.

:class:`LocalRayCluster` runs ``ray.cluster_utils.Cluster`` (a head node and worker nodes, all on
127.0.0.1) in a helper process of its own (``python -m vidaffect.testing.ray_cluster``), so
the caller never becomes a Ray driver and Ray reads the environment it is given (HOME, the
token) when it starts. The helper takes one command per line on stdin and answers one JSON
line on stdout: ``add {"num_cpus": 1, "resources": {...}, "labels": {...}}`` starts a node,
``remove NODE_ID`` kills one (its raylet and workers, as a host that died), ``quit`` ends the
cluster. :meth:`LocalRayCluster.close` ends the helper and then, by PID, every process still
holding the cluster's token in its environment.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def ray_env(home: Path) -> dict[str, str]:
    """The environment of a test cluster and its drivers: HOME in ``home``, token
    authentication with a fresh token, 127.0.0.1 kept as the nodes' address (ray 2.60
    rewrites it to the host's address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), no
    usage reports."""
    return {
        "HOME": str(home),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def processes_of(env: dict[str, str]) -> list[int]:
    """PIDs of the processes started with the test cluster environment ``env`` (:func:`ray_env`),
    whose environment holds its token, and of all their descendants (Ray's agents retitle
    themselves over their environment). Call it before killing any of them."""
    import psutil  # type: ignore[import-untyped]

    token = env["RAY_AUTH_TOKEN"]
    pids: set[int] = set()
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("RAY_AUTH_TOKEN") == token:
                pids.add(p.pid)
                pids.update(c.pid for c in p.children(recursive=True))
        except psutil.Error:
            continue
    return sorted(pids)


def kill_pids(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` that is still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class LocalRayCluster:
    """A head node (``head_cpus`` CPUs, custom ``head_resources``) on 127.0.0.1 in a helper
    process; see the module docstring.

    Attributes:
        address: the head's GCS ``HOST:PORT`` for ``pipeline.ray.address``.
        env: what a driver of this cluster needs in its environment (:func:`ray_env`).
        head: the head node's id (hex).

    Raises:
        RuntimeError: the cluster did not start (the helper's stderr in the message).
    """

    def __init__(self, head_cpus: int = 2, head_resources: dict[str, float] | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="vr-"))  # short: Ray's socket paths live under it
        self.env = ray_env(self.home)
        self._stderr = (self.home / "helper.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vidaffect.testing.ray_cluster",
                str(head_cpus),
                str(self.home / "ray"),
                json.dumps(head_resources or {}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, **self.env},
        )
        started = self._answer()
        self.address: str = started["address"]
        self.head: str = started["node_id"]

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self._stderr.flush()
            log = (self.home / "helper.log").read_text()[-3000:]  # before close() removes it
            self.close()
            raise RuntimeError(
                f"the Ray test cluster failed (helper exit code {self.proc.returncode}):\n{log}"
            )
        return dict(json.loads(line))

    def _command(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def add_node(
        self,
        num_cpus: int = 1,
        resources: dict[str, float] | None = None,
        labels: dict[str, str] | None = None,
    ) -> str:
        """Start a worker node; its node id (hex)."""
        args = {"num_cpus": num_cpus, "resources": resources or {}, "labels": labels or {}}
        return str(self._command("add " + json.dumps(args))["node_id"])

    def remove_node(self, node_id: str) -> None:
        """Kill the worker node whose id starts with ``node_id`` (as a host that died)."""
        self._command(f"remove {node_id}")

    def close(self) -> None:
        """End the cluster, then every process of it still there, by PID (:func:`processes_of`,
        listed before the end: orphans cannot be found after)."""
        started = processes_of(self.env)
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        kill_pids(started)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        self._stderr.close()
        shutil.rmtree(self.home, ignore_errors=True)


def _serve(head_cpus: int, temp_dir: str, head_resources: dict[str, float]) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": head_cpus,
            "resources": head_resources,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            "temp_dir": temp_dir,
        },
    )
    nodes: dict[str, Any] = {}

    def say(**fields: Any) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    head: Any = cluster.head_node
    say(address=cluster.address, node_id=head.node_id)
    try:
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "add":
                opts = json.loads(arg)
                node = cluster.add_node(node_ip_address="127.0.0.1", **opts)
                nodes[node.node_id] = node
                say(node_id=node.node_id)
            elif command == "remove":
                node_id = next(n for n in nodes if n.startswith(arg))
                cluster.remove_node(nodes.pop(node_id), allow_graceful=False)
                say(removed=node_id)
            elif command == "quit":
                break
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))
