"""All pluggy hook specifications of vidaffect, in one place.

Hooks are for registration only (never per-frame calls). A plugin module implements one or
more of them and is announced in its package metadata under the ``vidaffect`` entry-point
group::

    [project.entry-points.vidaffect]
    my_sink = "my_package.plugin"

    # my_package/plugin.py
    import vidaffect

    @vidaffect.hookimpl
    def register_sinks(register):
        register(MySink)

``register(cls)`` takes a class deriving from the matching base in :mod:`vidaffect.api`;
the class's ``name`` is its key in pipeline YAML (``type: my_sink``). Duplicate names are
an error.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("vidaffect")
hookimpl = pluggy.HookimplMarker("vidaffect")

Register = Callable[[type], None]


@hookspec
def register_sources(register: Register) -> None:
    """Register :class:`vidaffect.api.Source` classes (video files, cameras, streams, ...)."""


@hookspec
def register_detectors(register: Register) -> None:
    """Register :class:`vidaffect.api.Detector` classes (face detectors)."""


@hookspec
def register_classifiers(register: Register) -> None:
    """Register :class:`vidaffect.api.Classifier` classes (emotion models, ...)."""


@hookspec
def register_sinks(register: Register) -> None:
    """Register :class:`vidaffect.api.Sink` classes (video files, windows, event sockets, ...)."""
