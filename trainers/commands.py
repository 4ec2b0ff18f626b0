"""The training commands, per task: what ``vidaffect train|evaluate|compare|export|stats``
and ``python -m vidaffect_trainers.<task>`` run.

``vidaffect train --task emotic ARGS`` and ``python -m vidaffect_trainers.emotic train ARGS``
run the same code. ``--task`` defaults to ``fer2013`` (``emotic`` for ``stats``, which only
EMOTIC has). Each command's options are its module's ``add_arguments``; ``vidaffect train
--help`` prints them.

Training needs a few packages that running pipelines does not (the ``train`` extra,
:data:`TRAIN_EXTRA`); a command that imports one of them when it is missing fails with a line
naming the extra instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from vidaffect.errors import VidaffectError

TASKS = ("fer2013", "emotic")
# import name -> distribution, for the packages of `pip install vidaffect[train]`
TRAIN_EXTRA = {"sklearn": "scikit-learn", "scipy": "scipy"}


@dataclass(frozen=True)
class Command:
    """One command of a task: its module (which has ``add_arguments(parser)``) and the function
    of that module that runs it with the parsed arguments."""

    name: str
    help: str
    module: str
    entry: str = "main"


_EXPORT = Command(
    "export",
    "a small fp16 copy of a checkpoint for shipping, with test figures in its metadata",
    "vidaffect_trainers.export",
)
COMMANDS: dict[str, tuple[Command, ...]] = {
    "fer2013": (
        Command(
            "train", "train, fine-tune or resume a FER model", "vidaffect_trainers.fer2013.train", "train"
        ),
        Command(
            "evaluate",
            "test metrics (one JSON line) and a report folder",
            "vidaffect_trainers.fer2013.evaluate",
        ),
        Command(
            "compare",
            "size, compute, CPU latency and accuracy of checkpoints",
            "vidaffect_trainers.fer2013.compare",
        ),
        Command(
            "calibrate",
            "fit the softmax temperature on the validation split (temperature scaling)",
            "vidaffect_trainers.fer2013.calibrate",
        ),
        Command(
            "ensemble",
            "one checkpoint from several trained ones (a deep ensemble), calibrated",
            "vidaffect_trainers.fer2013.ensemble",
        ),
        _EXPORT,
    ),
    "emotic": (
        Command(
            "stats",
            "ground-truth statistics and the label-prior mAP (no images needed)",
            "vidaffect_trainers.emotic.stats",
        ),
        Command(
            "train", "train or resume a body + context model", "vidaffect_trainers.emotic.train", "train"
        ),
        Command(
            "evaluate",
            "test mAP, VAD error, co-occurrence (one JSON line) and a report folder",
            "vidaffect_trainers.emotic.evaluate",
        ),
        Command(
            "compare",
            "size, compute, CPU latency and mAP of checkpoints",
            "vidaffect_trainers.emotic.compare",
        ),
        _EXPORT,
    ),
}


def find_command(task: str, name: str) -> Command:
    """The command ``name`` of ``task``.

    Raises:
        ValueError: an unknown task, or a command the task does not have (names those it has).
    """
    if task not in COMMANDS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    for command in COMMANDS[task]:
        if command.name == name:
            return command
    have = [t for t in TASKS if any(c.name == name for c in COMMANDS[t])]
    raise ValueError(f"task {task!r} has no {name!r} command (--task {' or '.join(have) or '?'} has)")


def missing_extra_message(exc: ModuleNotFoundError, what: str) -> str | None:
    """The user-facing line for a package of the ``train`` extra that is not installed, or
    ``None`` when ``exc`` is about another module."""
    root = (exc.name or "").split(".")[0]
    if root not in TRAIN_EXTRA:
        return None
    return (
        f"{what} needs {TRAIN_EXTRA[root]}, which is not installed; it comes with the train extra: "
        "pip install 'vidaffect[train]'"
    )


def run(task: str, name: str, argv: list[str], prog: str, task_option: bool = False) -> int:
    """Parse ``argv`` for the command ``name`` of ``task`` and run it; the exit code.

    Errors a user can act on (:class:`~vidaffect.errors.VidaffectError`, a missing file, a bad
    value, a missing package of the ``train`` extra) are printed as one ``error:`` line on
    stderr and give 1; bad options give argparse's usage error (2).

    Args:
        prog: the command as the user typed it, for usage lines (``vidaffect train``).
        task_option: add ``--task`` to the usage (it was already read by the caller).
    """
    command = find_command(task, name)
    try:
        module = importlib.import_module(command.module)
        parser = argparse.ArgumentParser(prog=prog, description=command.help)
        if task_option:
            parser.add_argument(
                "--task",
                choices=[t for t in TASKS if any(c.name == name for c in COMMANDS[t])],
                default=task,
                help=f"which model family (default: {task})",
            )
        module.add_arguments(parser)
        args = parser.parse_args(argv)
        result = getattr(module, command.entry)(args)
        if name == "train":
            print(result)
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc, f"`{prog}`")
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    except (VidaffectError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def task_main(task: str, argv: list[str] | None, prog: str) -> int:
    """``python -m vidaffect_trainers.<task> COMMAND [ARGS]``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=f"{task} models: " + "; ".join(f"{c.name}: {c.help}" for c in COMMANDS[task])
    )
    parser.add_argument("command", choices=[c.name for c in COMMANDS[task]])
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's options (COMMAND --help)")
    ns = parser.parse_args(argv)
    return run(task, ns.command, ns.args, prog=f"{prog} {ns.command}")
