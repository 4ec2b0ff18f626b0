"""The project's error hierarchy.

Every error a user can see derives from :class:`VidaffectError` and carries a message that
is fit to print as is (the CLI prints ``str(err)`` and exits non-zero, no traceback).
"""

from __future__ import annotations


class VidaffectError(Exception):
    """Base class of errors meant for the user; ``str(err)`` is the public message."""


class ConfigError(VidaffectError):
    """A pipeline YAML (or ``--set`` override) is invalid. Raised before any process starts."""


class PluginError(VidaffectError):
    """A plugin is unknown, registered twice, failed to load, or cannot run on this machine
    (its preflight check failed)."""


class CheckpointError(VidaffectError):
    """A model checkpoint is missing, unreadable or incompatible with its consumer."""


class SourceError(VidaffectError):
    """A video source cannot be opened (missing file, dead camera, unreachable URL)."""


class StageError(VidaffectError):
    """A pipeline stage process crashed; the message holds the stage name and traceback."""
