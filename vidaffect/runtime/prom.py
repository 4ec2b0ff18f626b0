"""Per-stage counters served for Prometheus (``pipeline.metrics_port``, on ``metrics_host``:
loopback unless the pipeline says ``insecure``; the endpoint has no authentication).

Gauges ``vidaffect_stage_<counter>{pipeline, stage}`` mirror the supervisor's merged stage
metrics (frames in/out, dropped, lost, malformed, refused connections, skipped, faces, busy seconds, frames the
detector ran on, stream reconnects and seconds without frames, streams down now (``down``,
for alerting), frames a file announced but
could not decode (``unreadable``), latency percentiles in
milliseconds); they are refreshed every supervisor loop. A plugin's own counters
(:meth:`vidaffect.api.Plugin.counters`) are ``vidaffect_plugin_counter{pipeline, stage, counter}``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

_COUNTERS = (
    "frames_in",
    "frames_out",
    "dropped",
    "lost",
    "malformed",
    "refused",
    "skipped",
    "faces",
    "busy_s",
    "detected",
    "reconnects",
    "gap_s",
    "down",
    "unreadable",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)


class PrometheusExporter:
    """Serves ``http://ADDR:PORT/metrics`` until the process exits (or ``close``)."""

    def __init__(self, port: int, pipeline: str, addr: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry()
        self.pipeline = pipeline
        self.gauges = {
            key: Gauge(
                f"vidaffect_stage_{key}", f"stage metric {key}", ["pipeline", "stage"], registry=self.registry
            )
            for key in _COUNTERS
        }
        self.plugin_counters = Gauge(
            "vidaffect_plugin_counter",
            "a plugin's own counter",
            ["pipeline", "stage", "counter"],
            registry=self.registry,
        )
        self.server, self.thread = start_http_server(port, addr=addr, registry=self.registry)

    def update(self, stages: dict[str, dict[str, Any]]) -> None:
        for stage, metrics in stages.items():
            for key, gauge in self.gauges.items():
                value = metrics.get(key)
                if value is not None:
                    gauge.labels(self.pipeline, stage).set(value)
            for key, value in metrics.items():
                if key.startswith("plugin_") and value is not None:
                    self.plugin_counters.labels(self.pipeline, stage, key.removeprefix("plugin_")).set(value)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
