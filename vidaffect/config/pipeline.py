"""A validated pipeline file, as the runtime reads it: stages in flow order, named, with their
engine keys and plugin options apart.

:class:`PipelineConfig` wraps the validated document (:mod:`vidaffect.config.document`) and
derives the stages from it; nothing is edited after validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel

from vidaffect.api import PluginConfig
from vidaffect.config.settings import STAGE_KEYS, EngineSettings, StageKeys, TrackingSettings
from vidaffect.plugin_manager import get_registry

StageKind = Literal["source", "detector", "classifier", "sink"]


@dataclass(frozen=True)
class StageConfig:
    """One stage of a validated pipeline.

    Attributes:
        name: unique stage name: ``source`` (or ``source-<stream>`` with several sources),
            ``detector``, ``classifier``, ``sink-<index>-<type>``.
        kind: the plugin kind.
        type: the registered plugin name.
        options: the engine's stage keys (``workers``, ``on_error``, ...).
        plugin: the plugin's own validated ``Config``.
        stream: sources only: the stream id this source feeds.
    """

    name: str
    kind: StageKind
    type: str
    options: StageKeys
    plugin: PluginConfig
    stream: str | None = None

    @property
    def plugin_dict(self) -> dict[str, Any]:
        """The plugin's options as JSON-compatible values (what a stage process rebuilds them from)."""
        return self.plugin.model_dump(mode="json")


def _split(kind: StageKind, name: str, section: BaseModel, stream: str | None = None) -> StageConfig:
    """A validated stage variant split into its engine keys and its plugin's options (both
    already validated: built without validating again)."""
    cls = get_registry().get(kind, section.type)  # type: ignore[attr-defined]
    values = dict(section)
    keys = STAGE_KEYS[kind]
    options = keys.model_construct(**{k: values[k] for k in keys.model_fields})
    plugin = cls.Config.model_construct(**{k: values[k] for k in cls.Config.model_fields})
    return StageConfig(name, kind, section.type, options, plugin, stream)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PipelineConfig:
    """A whole validated pipeline.

    Attributes:
        path: where it came from (file name, with any ``--set`` overrides), for messages.
        document: the validated file (:func:`vidaffect.config.document.document_model`).
    """

    path: str
    document: Any

    @property
    def engine(self) -> EngineSettings:
        """The ``pipeline`` section."""
        engine: EngineSettings = self.document.pipeline
        return engine

    @property
    def tracking(self) -> TrackingSettings | None:
        """The ``tracking`` section, None when absent or ``enabled: false``."""
        tracking = self.document.tracking
        return tracking if tracking is not None and tracking.enabled else None

    @cached_property
    def sources(self) -> list[StageConfig]:
        """One stage per source, each with its stream id: ``stream``, else ``pipeline.stream_id``
        for a single source and ``cam<i>`` in a list."""
        doc = self.document
        if doc.source is not None:
            return [_split("source", "source", doc.source, doc.source.stream or self.engine.stream_id)]
        items = doc.sources
        if len(items) == 1:
            return [_split("source", "source", items[0], items[0].stream or self.engine.stream_id)]
        streams = [s.stream or f"cam{i}" for i, s in enumerate(items)]
        return [_split("source", f"source-{st}", s, st) for s, st in zip(items, streams)]

    @cached_property
    def detector(self) -> StageConfig | None:
        """The detector stage, if the file has one."""
        d = self.document.detector
        return None if d is None else _split("detector", "detector", d)

    @cached_property
    def classifier(self) -> StageConfig | None:
        """The classifier stage, if the file has one."""
        c = self.document.classifier
        return None if c is None else _split("classifier", "classifier", c)

    @cached_property
    def sinks(self) -> list[StageConfig]:
        """The sink stages, named ``sink-<index>-<type>``."""
        return [_split("sink", f"sink-{i}-{s.type}", s) for i, s in enumerate(self.document.sinks)]

    @property
    def source(self) -> StageConfig:
        """The first (often the only) source."""
        return self.sources[0]

    @property
    def streams(self) -> list[str]:
        """Stream ids, one per source, in the order of ``sources``."""
        return [str(s.stream) for s in self.sources]

    @property
    def stages(self) -> list[StageConfig]:
        """Stages in flow order: sources, detector, classifier, sinks."""
        return self.sources + [s for s in (self.detector, self.classifier) if s] + self.sinks

    def stage(self, name: str) -> StageConfig:
        """The stage named ``name``.

        Raises:
            KeyError: no stage has that name.
        """
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)
