"""The ``vidaffect`` command: run pipelines, list plugins, print events, run the demo, and the
commands installed packages add (the trainers' train, evaluate, ...)."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import click

from vidaffect.errors import VidaffectError
from vidaffect.runtime.logs import configure, debug_enabled


def _fail(err: VidaffectError) -> None:
    """Print a user-facing error (its traceback too with --debug) and exit with its status."""
    if debug_enabled():
        traceback.print_exception(err)
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)


@click.group()
@click.version_option(package_name="vidaffect")
@click.option(
    "--debug", is_flag=True, help="debug log records and the tracebacks of errors, here and in every stage"
)
def main(debug: bool) -> None:
    """vidaffect: real-time video analytics for affect (faces -> emotions -> events)."""
    configure(debug or None)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="override a setting, e.g. --set source.uri=clip.mp4 (repeatable)",
)
@click.option("--status/--no-status", default=None, help="live status line (default: from config)")
@click.option(
    "--report/--no-report",
    "write_report",
    default=True,
    show_default=True,
    help="after the run, per-stream CSV timelines and PNG plots beside each jsonl sink's file",
)
def run(config: Path, overrides: tuple[str, ...], status: bool | None, write_report: bool) -> None:
    """Run the pipeline described by CONFIG (a YAML file)."""
    from vidaffect.cli.run_summary import plugin_counter_lines, stage_table
    from vidaffect.config import load_config
    from vidaffect.runtime.supervisor import raise_for_errors, run_pipeline

    try:
        cfg = load_config(config, overrides)
        result = run_pipeline(cfg, show_status=status)
        click.echo(stage_table(result.stages), err=True)
        for line in plugin_counter_lines(result.stages):
            click.echo(line, err=True)
        for line in result.warnings:
            click.echo(f"warning: {line}", err=True)
        out = result.stages.get(cfg.sinks[0].name, {}).get("frames_out", 0)
        click.echo(
            f"{out} frames in {result.wall_s:.1f} s ({out / max(result.wall_s, 1e-9):.1f} fps)"
            + (" (interrupted)" if result.interrupted else "")
            + f"; start-up {result.startup_s:.1f} s",
            err=True,
        )
        if cfg.engine.metrics_file:
            Path(cfg.engine.metrics_file).write_text(json.dumps(result.stages, indent=1))
        if write_report:
            for sink in cfg.sinks:
                path = Path(getattr(sink.plugin, "path", ""))
                if sink.type == "jsonl" and path.is_file():
                    _print_report(path, None)
                elif sink.type == "jsonl" and sink.name in result.placement:
                    host = result.placement[sink.name].get("ip", "?")
                    click.echo(f"{sink.name} wrote {path} on {host}: `vidaffect report` it there", err=True)
        raise_for_errors(result)
    except VidaffectError as err:
        _fail(err)


def _print_report(events: Path, out: Path | None) -> None:
    from vidaffect.cli.run_summary import emotion_summary
    from vidaffect.events.timeline import read_timelines
    from vidaffect.events.timeline_plot import write_timeline_files

    timelines = read_timelines(events)  # read once, for the summary and the files
    table, stats = emotion_summary(events, timelines)
    click.echo(
        f"\n{events}: {stats['faces']} faces in {stats['frames']} frames "
        f"({stats['frames_with_faces']} with faces)",
        err=True,
    )
    if stats["faces"]:
        click.echo(table, err=True)
    for path in write_timeline_files(events, out, timelines):
        click.echo(f"  {path}", err=True)


@main.command()
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder for the files (default: the events file's folder)",
)
def report(events: Path, out: Path | None) -> None:
    """Tables and plots of a run's EVENTS (a jsonl sink's file): per stream a CSV timeline
    (one row per face and frame), a per-track summary CSV and a PNG timeline; prints the
    per-emotion summary."""
    try:
        _print_report(events, out)
    except (OSError, UnicodeDecodeError) as err:
        _fail(VidaffectError(f"cannot write a report of {events}: {err}"))


@main.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write it to this file (default: print it)",
)
def schema(out: Path | None) -> None:
    """The JSON Schema of pipeline files for the installed plugins. Editors that speak the YAML
    language server validate and complete a pipeline as it is typed when its first line is
    `# yaml-language-server: $schema=PATH` (the shipped configs point at
    configs/pipeline.schema.json, the built-in plugins' schema)."""
    from vidaffect.config import pipeline_schema

    try:
        text = json.dumps(pipeline_schema(), indent=2) + "\n"
    except VidaffectError as err:
        _fail(err)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)


@main.command()
@click.argument("endpoints", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to serve on")
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--token-env", default=None, help="environment variable holding the token viewers must give")
@click.option(
    "--timeline-s", type=int, default=300, show_default=True, help="seconds of emotion timeline kept"
)
def dashboard(
    endpoints: tuple[str, ...], host: str, port: int, token_env: str | None, timeline_s: int
) -> None:
    """Serve a live dashboard of the pipelines whose `preview` sinks bind ENDPOINTS
    (e.g. tcp://127.0.0.1:5570; several pipelines, on this host or others). Open
    http://HOST:PORT/ in a browser. Beyond loopback, a token is required (--token-env)."""
    from vidaffect.dashboard.app import serve
    from vidaffect.runtime.addresses import is_loopback

    token = os.environ.get(token_env) if token_env else None
    if token_env and not token:
        _fail(VidaffectError(f"dashboard: the environment variable {token_env} (the token) is not set"))
    if not is_loopback(host) and token is None:
        _fail(
            VidaffectError(f"dashboard: serving on {host} lets other hosts watch the video; give --token-env")
        )
    click.echo(f"dashboard on http://{host}:{port}/ ({', '.join(endpoints)})", err=True)
    try:
        serve(list(endpoints), host, port, token, timeline_s)
    except OSError as err:
        _fail(VidaffectError(f"dashboard: cannot serve on {host}:{port}: {err}"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plugins(as_json: bool) -> None:
    """List installed plugins (built-in and third-party) and their options."""
    from vidaffect.cli.plugin_info import describe_plugins, format_plugins

    try:
        info = describe_plugins()
    except VidaffectError as err:
        _fail(err)
    click.echo(json.dumps(info, indent=1) if as_json else format_plugins(info))


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--name", default="server", show_default=True, help="file name of the key pair")
def keys(folder: str, name: str) -> None:
    """Write a CurveZMQ key pair to FOLDER: NAME.key (public) and NAME.key_secret.

    A zmq_events sink with curve_secret_key set uses the server pair; give each subscriber
    its own pair and copy its NAME.key into the sink's curve_authorized_keys folder.
    """
    import zmq.auth

    Path(folder).mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(folder, name)
    os.chmod(secret, 0o600)
    click.echo(f"public key: {public}\nsecret key: {secret}")


@main.command()
@click.argument("endpoint", default="tcp://127.0.0.1:5560")
@click.option("--topic", default="", help="stream id to print, matched whole (default: all)")
@click.option("--count", type=int, default=0, help="exit after this many events (0: never)")
@click.option(
    "--curve-secret-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CurveZMQ: this subscriber's secret key file",
)
@click.option(
    "--curve-server-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CurveZMQ: the sink's public key file",
)
def events(
    endpoint: str, topic: str, count: int, curve_secret_key: str | None, curve_server_key: str | None
) -> None:
    """Subscribe to ENDPOINT and print each JSON event on its own line."""
    import zmq

    from vidaffect.events.subscribe import iter_events

    if (curve_secret_key is None) != (curve_server_key is None):
        raise click.UsageError("--curve-secret-key and --curve-server-key go together (CurveZMQ)")
    try:
        stream = iter_events(
            endpoint, topic, curve_secret_key=curve_secret_key, curve_server_key=curve_server_key
        )
        for n, (_, event) in enumerate(stream, start=1):
            click.echo(json.dumps(event))
            if count and n >= count:
                break
    except KeyboardInterrupt:
        pass
    except zmq.ZMQError as err:
        _fail(VidaffectError(f"cannot subscribe to {endpoint!r}: {err} (expected e.g. tcp://127.0.0.1:5560)"))
    except (OSError, ValueError) as err:  # a key file that is missing or not a key
        _fail(VidaffectError(f"cannot read the curve key: {err}"))


@main.command()
@click.argument("video", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/demo"),
    show_default=True,
    help="folder for the annotated video and events",
)
@click.option("--status/--no-status", default=True)
def demo(video: Path | None, out: Path, status: bool) -> None:
    """Run the default pipeline on VIDEO (default: a sample clip) and summarise the emotions."""
    from vidaffect.cli.demo import run_demo

    try:
        code = run_demo(video, out, status)
    except VidaffectError as err:
        _fail(err)
    sys.exit(code)


def add_installed_commands(group: click.Group) -> None:
    """Add the commands that installed packages announce in the ``vidaffect.commands`` entry
    point group (each entry point is a function taking the click group): vidaffect's trainers
    add ``train``, ``evaluate``, ``compare``, ``calibrate``, ``ensemble``, ``export`` and ``stats`` this way.
    A package whose commands fail to load is named on stderr; the other commands still work."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="vidaffect.commands"):
        try:
            ep.load()(group)
        except Exception as exc:  # a broken third-party package must not break `vidaffect`
            click.echo(f"warning: commands of {ep.value} not loaded: {exc}", err=True)


add_installed_commands(main)

if __name__ == "__main__":
    main()
