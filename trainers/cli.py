"""``vidaffect train|evaluate|compare|calibrate|ensemble|export|stats``: the model training commands,
added to the ``vidaffect`` command through the ``vidaffect.commands`` entry point group
(:func:`add_commands`), so the engine does not depend on the trainers.

Each forwards its arguments to the command of the chosen task in
:mod:`vidaffect_trainers.commands` (``--task fer2013``, the default, or ``--task emotic``), which
parses them; ``vidaffect train --help`` lists a command's options. They work from any folder:
paths are relative to the current folder, and reports are written there by default.
"""

from __future__ import annotations

import argparse
import sys

import click

DEFAULT_TASK = {"stats": "emotic"}  # others: fer2013
SUMMARIES = {
    "train": "Train, fine-tune or resume an emotion model (--task fer2013 | emotic).",
    "evaluate": "Test metrics of a checkpoint and a report folder (--task fer2013 | emotic).",
    "compare": "Checkpoints side by side: size, compute, CPU latency, accuracy.",
    "calibrate": "Fit a checkpoint's softmax temperature on its validation split (ECE before/after).",
    "ensemble": "One checkpoint from several trained ones (a deep ensemble), calibrated.",
    "export": "A small fp16 copy of a checkpoint for shipping, with its test figures.",
    "stats": "EMOTIC annotations: ground-truth statistics and the label-prior mAP.",
}


def _task_of(name: str, args: tuple[str, ...]) -> str:
    """The ``--task`` given among ``args`` (or the command's default), checked."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=DEFAULT_TASK.get(name, "fer2013"))
    task = pre.parse_known_args(list(args))[0].task
    from vidaffect_trainers.commands import find_command

    try:
        find_command(task, name)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    return task


def _make(name: str) -> click.Command:
    @click.command(
        name,
        help=SUMMARIES[name] + " Options: vidaffect " + name + " --help.",
        short_help=SUMMARIES[name],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        from vidaffect_trainers.commands import run

        task = _task_of(name, args)
        sys.exit(run(task, name, list(args), prog=f"vidaffect {name}", task_option=True))

    return command


def add_commands(group: click.Group) -> None:
    """Add the training commands to the ``vidaffect`` command group (the entry point)."""
    for name in SUMMARIES:
        group.add_command(_make(name))
