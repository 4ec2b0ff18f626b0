"""From a validated pipeline to one spec per stage worker process.

Flow: source -> detector -> classifier -> every sink. Each worker of a stage binds its own
input endpoint; every worker of the upstream stage connects a PUSH socket to each of them.
A stage with one worker restores frame order (its input may come from a fanned-out stage);
workers of a fanned-out stage see only some frames and pass them on unordered.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidaffect.config import PipelineConfig, StageConfig


@dataclass
class WorkerSpec:
    """A stage worker: which stage it belongs to and the dict its process receives."""

    stage: StageConfig
    worker: int
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return self.spec["stage"] if self.stage.options.workers == 1 else f"{self.spec['stage']}[{self.worker}]"


def default_threads(config: PipelineConfig) -> int:
    """Threads per compute worker so detector and classifier workers share the cores evenly."""
    compute = sum(s.options.workers for s in (config.detector, config.classifier) if s)
    return max(1, (os.cpu_count() or 1) // max(1, compute))


def build_specs(config: PipelineConfig, endpoint: Callable[[str], str], control: str,
                report: str) -> list[WorkerSpec]:
    """One :class:`WorkerSpec` per process, in flow order."""
    engine = config.engine
    chain: list[StageConfig] = [s for s in (config.source, config.detector, config.classifier) if s]
    inputs: dict[str, list[str]] = {}
    for stage in chain[1:] + config.sinks:
        inputs[stage.name] = [endpoint(f"{stage.name}-{w}") for w in range(stage.options.workers)]
    threads = default_threads(config)
    streams = [engine.stream_id]
    specs: list[WorkerSpec] = []
    for i, stage in enumerate(chain + config.sinks):
        if i < len(chain) - 1:
            downstream = [chain[i + 1]]
        elif i == len(chain) - 1:
            downstream = list(config.sinks)
        else:
            downstream = []
        if i == 0:
            producers = 0
        elif i < len(chain):
            producers = chain[i - 1].options.workers
        else:
            producers = chain[-1].options.workers
        for w in range(stage.options.workers):
            spec = {
                "stage": stage.name, "kind": stage.kind, "worker": w,
                "workers": stage.options.workers, "plugin": stage.options.type,
                "plugin_options": stage.plugin_dict,
                "threads": stage.options.threads or (threads if stage.kind in ("detector", "classifier") else 1),
                "input": inputs[stage.name][w] if stage.name in inputs else None,
                "outputs": [inputs[d.name] for d in downstream],
                "producers": producers, "ordered": stage.options.workers == 1,
                "reorder_window": engine.reorder_window, "hwm": engine.hwm,
                "streams": streams, "stream_id": engine.stream_id,
                "control": control, "report": report,
            }
            specs.append(WorkerSpec(stage, w, spec))
    return specs
