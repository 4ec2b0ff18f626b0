"""``pipeline.runner: ray`` settings and the checks made before any actor starts: the keys,
a stage no node can take, and frames in the clear between hosts. The cluster's nodes are given
as ``ray.nodes()`` lists them; ``tests/test_ray.py`` runs pipelines on real clusters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vidaffect.config import validate
from vidaffect.errors import ConfigError, PluginError
from vidaffect.runtime.ray_runner import check_exposure, check_placeable, placement_lines

CLIP = str(Path(__file__).resolve().parent / "conftest.py")  # any existing file


def config(classifier: dict[str, Any] | None = None, **engine: Any) -> Any:
    return validate(
        {
            "pipeline": {"runner": "ray", **engine},
            "source": {"type": "video", "uri": CLIP},
            "detector": {"type": "haar"},
            "classifier": {"type": "fer", **(classifier or {})},
            "sinks": [{"type": "record", "path": "out.txt"}],
        }
    )


def node(
    address: str, alive: bool = True, labels: dict[str, str] | None = None, **resources: float
) -> dict[str, Any]:
    return {"NodeManagerAddress": address, "Alive": alive, "Resources": resources, "Labels": labels or {}}


def test_runner_ray_moves_stages_to_tcp_and_refuses_ipc() -> None:
    assert config().engine.transport == "tcp"
    assert config().engine.ray.address == "auto"
    with pytest.raises(ConfigError, match="use transport: tcp"):
        config(transport="ipc")
    with pytest.raises(ConfigError, match="address"):
        config(ray={"address": "gcs.example.org"})  # no port


def test_a_stage_is_placed_where_resources_and_labels_match() -> None:
    cfg = config({"placement": {"num_gpus": 1, "resources": {"gpu_box": 1}, "labels": {"zone": "lab"}}})
    nodes = [
        node("10.0.0.1", CPU=8),
        node("10.0.0.2", GPU=1, gpu_box=1, labels={"zone": "hall"}),
        node("10.0.0.3", GPU=1, gpu_box=1, labels={"zone": "lab"}, alive=False),
    ]
    with pytest.raises(
        PluginError,
        match=r"stage 'classifier' cannot be placed: .*\(2 alive\) has GPU: 1, gpu_box: 1, label zone=lab",
    ):
        check_placeable(cfg.stages, nodes)
    nodes.append(node("10.0.0.4", GPU=2, gpu_box=1, CPU=4, labels={"zone": "lab", "rack": "2"}))
    check_placeable(cfg.stages, nodes)  # no error


def test_auth_none_between_hosts_needs_insecure() -> None:
    loopback = [node("127.0.0.1"), node("127.0.0.2")]
    lan = [node("127.0.0.1"), node("192.168.1.20"), node("192.168.1.21", alive=False)]
    check_exposure(config(auth="none"), loopback)
    check_exposure(config(), lan)  # curve: encrypted
    with pytest.raises(
        PluginError, match=r"in the clear between the Ray nodes at 192\.168\.1\.20: keep auth: curve"
    ):
        check_exposure(config(auth="none"), lan)
    check_exposure(config(auth="none", insecure=True), lan)


def test_placement_lines_name_host_node_and_pid() -> None:
    lines = placement_lines(
        [("source", {"ip": "10.0.0.5", "node_id": "3f2a9c01aa", "pid": 42}), ("classifier[1]", {})]
    )
    assert lines == [
        "source        -> 10.0.0.5 (node 3f2a9c01, pid 42)",
        "classifier[1] -> ? (node ?, pid ?)",
    ]
