"""The project's error hierarchy.

Every error a user can see derives from :class:`VidaffectError` and carries a message that
is fit to print as is: the CLI prints ``str(err)`` and exits with the class's ``exit_code``
(the traceback only with ``vidaffect --debug``).
"""

from __future__ import annotations

from typing import ClassVar


class VidaffectError(Exception):
    """Base class of errors meant for the user; ``str(err)`` is the public message.

    Attributes:
        exit_code: the ``vidaffect`` command's exit status when this error ends it.
    """

    exit_code: ClassVar[int] = 1


class ConfigError(VidaffectError):
    """A pipeline YAML (or ``--set`` override) is invalid. Raised before any process starts
    (exit status 2, as for a command-line usage error)."""

    exit_code: ClassVar[int] = 2


class PluginError(VidaffectError):
    """A plugin is unknown, registered twice, failed to load, or cannot run on this machine
    (its preflight check failed)."""


class CheckpointError(VidaffectError):
    """A model checkpoint is missing, unreadable or incompatible with its consumer."""


class SourceError(VidaffectError):
    """A video source cannot be opened (missing file, dead camera, unreachable URL)."""


class SinkError(VidaffectError):
    """A sink cannot deliver its output: a path it cannot create or write (a full disk), an
    encoder that is missing, an address it cannot bind, a display that cannot open."""


class StageError(VidaffectError):
    """A pipeline stage process crashed; the message holds the stage name and traceback."""
