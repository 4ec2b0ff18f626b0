"""Plugin loading: one pluggy manager, built-ins and third-party plugins alike.

Plugins are found through the ``vidaffect`` entry-point group (built-ins included). Two
environment variables adjust what is loaded:

* ``VIDAFFECT_PLUGINS``: comma-separated extra modules to register (e.g. test plugins);
* ``VIDAFFECT_BLOCK_PLUGINS``: comma-separated entry-point names not to load.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Literal, overload

import pluggy

from vidaffect import hookspecs
from vidaffect.api import PLUGIN_KINDS, Classifier, Detector, Plugin, Sink, Source
from vidaffect.errors import PluginError

ENTRY_POINT_GROUP = "vidaffect"


@dataclass
class Registry:
    """Registered plugin classes by kind and name, plus where each came from."""

    classes: dict[str, dict[str, type[Plugin]]] = field(default_factory=lambda: {k: {} for k in PLUGIN_KINDS})
    origin: dict[tuple[str, str], str] = field(default_factory=dict)

    def register(self, kind: str, cls: type, origin: str) -> None:
        base = PLUGIN_KINDS[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{origin}: {cls!r} registered as a {kind} is not a {base.__name__} subclass")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{origin}: {cls.__name__} has no 'name'")
        if name in self.classes[kind]:
            raise PluginError(
                f"{kind} {name!r} registered twice: by {self.origin[(kind, name)]} and by {origin}"
            )
        self.classes[kind][name] = cls
        self.origin[(kind, name)] = origin

    # register() checks that a class derives from its kind's base: a literal kind gives that base
    @overload
    def get(self, kind: Literal["source"], name: str) -> type[Source]: ...
    @overload
    def get(self, kind: Literal["detector"], name: str) -> type[Detector]: ...
    @overload
    def get(self, kind: Literal["classifier"], name: str) -> type[Classifier]: ...
    @overload
    def get(self, kind: Literal["sink"], name: str) -> type[Sink]: ...
    @overload
    def get(self, kind: str, name: str) -> type[Plugin]: ...

    def get(self, kind: str, name: str) -> type[Plugin]:
        """The class of ``kind`` registered as ``name``.

        Raises:
            PluginError: no such plugin (the message lists the installed ones).
        """
        try:
            return self.classes[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.classes[kind])) or "none"
            raise PluginError(f"unknown {kind} {name!r}; installed {kind}s: {known}") from None


_pm: pluggy.PluginManager | None = None
_registry: Registry | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading plugins on first use (idempotent).

    A module named in ``VIDAFFECT_PLUGINS`` that is already registered (e.g. installed with an
    entry point too) is registered once.

    Raises:
        PluginError: a ``VIDAFFECT_PLUGINS`` module cannot be imported.
    """
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager("vidaffect")
        pm.add_hookspecs(hookspecs)
        blocked = {b for b in os.environ.get("VIDAFFECT_BLOCK_PLUGINS", "").split(",") if b}
        for name in blocked:
            pm.set_blocked(name)
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for mod in filter(None, (m.strip() for m in os.environ.get("VIDAFFECT_PLUGINS", "").split(","))):
            try:
                module = importlib.import_module(mod)
            except ImportError as exc:
                raise PluginError(f"VIDAFFECT_PLUGINS: cannot import {mod!r}: {exc}") from None
            if pm.get_plugin(mod) is None and not pm.is_registered(module):  # e.g. also an entry point
                pm.register(module, name=mod)
        pm.check_pending()
        _pm = pm
    return _pm


def get_registry() -> Registry:
    """All registered plugin classes (built once per process)."""
    global _registry
    if _registry is None:
        pm = get_plugin_manager()
        registry = Registry()
        for kind in PLUGIN_KINDS:
            for impl in getattr(pm.hook, f"register_{kind}s").get_hookimpls():
                impl.function(
                    register=lambda cls, kind=kind, origin=impl.plugin_name: registry.register(
                        kind, cls, origin
                    )
                )
        _registry = registry
    return _registry


def reset() -> None:
    """Forget loaded plugins (tests use this after changing the environment)."""
    global _pm, _registry
    _pm, _registry = None, None


def distribution_of(origin: str) -> str:
    """The installed distribution that provides the entry point ``origin``, if any."""
    pm = get_plugin_manager()
    for plugin, dist in pm.list_plugin_distinfo():
        if pm.get_name(plugin) == origin:
            return f"{dist.project_name} {dist.version}"
    return "local module"
