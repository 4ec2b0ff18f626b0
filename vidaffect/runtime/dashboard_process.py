"""``pipeline.dashboard``: ``vidaffect dashboard`` started beside the run, watching its
``preview`` sinks, and stopped by PID when the run ends."""

from __future__ import annotations

import logging
import subprocess
import sys

from vidaffect.config import PipelineConfig

log = logging.getLogger(__name__)


def preview_endpoints(config: PipelineConfig) -> list[str]:
    """Where the dashboard connects: each ``preview`` sink's endpoint, a ``*`` host as loopback."""
    out = []
    for sink in config.sinks:
        if sink.type == "preview":
            ep = str(sink.plugin_dict["endpoint"])
            out.append(ep.replace("://*:", "://127.0.0.1:").replace("://0.0.0.0:", "://127.0.0.1:"))
    return out


def start_dashboard(config: PipelineConfig) -> subprocess.Popen[bytes] | None:
    """Start the dashboard process for ``config`` (None without ``pipeline.dashboard``)."""
    settings = config.engine.dashboard
    if settings is None:
        return None
    cmd = [sys.executable, "-m", "vidaffect", "dashboard", *preview_endpoints(config)]
    cmd += ["--host", settings.host, "--port", str(settings.port)]
    if settings.token_env:
        cmd += ["--token-env", settings.token_env]
    log.info("dashboard on http://%s:%d/", settings.host, settings.port)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def stop_dashboard(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
