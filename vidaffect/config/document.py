"""The pipeline file as one pydantic model, built from the installed plugins.

Each stage section is a discriminated union on ``type`` over the installed plugins of its kind;
a variant is the plugin's own ``Config`` model merged with the engine's stage keys
(:data:`vidaffect.config.settings.STAGE_KEYS`), unknown keys forbidden. The same model gives
the JSON Schema that editors validate pipeline files against (``vidaffect schema``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from vidaffect.config.settings import STAGE_KEYS, EngineSettings, TrackingSettings
from vidaffect.errors import PluginError
from vidaffect.plugin_manager import Registry, get_registry

SCHEMA_ID = "https://vidaffect.dev/schemas/pipeline.json"


class StageModel(BaseModel):
    """Base of every generated stage variant: ``type`` is the plugin's registered name."""

    type: str


def stage_variant(kind: str, name: str, plugin_config: type[BaseModel], summary: str) -> type[StageModel]:
    """The model of one stage section that names plugin ``name``: its options and the stage keys.

    Raises:
        PluginError: the plugin's options reuse the name of a stage key (``workers``, ...).
    """
    keys = STAGE_KEYS[kind]
    clash = set(plugin_config.model_fields) & (set(keys.model_fields) | {"type"})
    if clash:
        raise PluginError(
            f"{kind} {name!r}: option(s) {', '.join(sorted(clash))} clash with the stage keys of "
            "every stage; rename them in the plugin's Config"
        )
    tag: Any = Literal[name]
    bases: Any = (StageModel, keys, plugin_config)  # pydantic's stubs want every base a StageModel
    model: type[StageModel] = create_model(
        f"{kind}_{name}",
        __base__=bases,
        __doc__=f"{kind} {name!r}: {summary}",
        type=(tag, Field(description=f"{kind} plugin: {summary}")),
    )
    return model


def _union(kind: str, registry: Registry) -> Any:
    variants = [
        stage_variant(kind, name, cls.Config, getattr(cls, "summary", ""))
        for name, cls in sorted(registry.classes[kind].items())
    ]
    if not variants:
        return None
    return Annotated[Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007


class _DocumentBase(BaseModel):
    model_config = ConfigDict(extra="forbid", title="vidaffect pipeline")

    pipeline: EngineSettings = Field(default_factory=EngineSettings, description="engine settings")  # type: ignore[arg-type]
    tracking: TrackingSettings | None = Field(
        None, description="face tracks and per-track smoothing (off without this section)"
    )

    @model_validator(mode="after")
    def _whole_file(self) -> _DocumentBase:
        data: Any = self
        if data.source is not None and data.sources is not None:
            raise ValueError("top level › sources: give either 'source' or 'sources', not both")
        if data.source is None and not data.sources:
            raise ValueError("stage 'source': required section is missing ('source' or 'sources')")
        if not data.sinks:
            raise ValueError("stage 'sinks': at least one sink is required")
        if data.pipeline.dashboard is not None and not any(s.type == "preview" for s in data.sinks):
            raise ValueError(
                "pipeline › dashboard: the dashboard shows what a preview sink publishes; add one "
                "(sinks: - type: preview)"
            )
        seen: dict[str, str] = {}
        for i, source in enumerate(data.sources or []):
            if source.stream is None:
                continue
            if source.stream in seen:
                raise ValueError(
                    f"stage 'sources[{i}]' › stream: {source.stream!r} is already the stream of "
                    f"{seen[source.stream]}"
                )
            seen[source.stream] = f"sources[{i}]"
        return self


def _build_document_model(registry: Registry) -> type[BaseModel]:
    source, detector, classifier, sink = (
        _union(k, registry) for k in ("source", "detector", "classifier", "sink")
    )
    fields: dict[str, Any] = {
        "source": (source | None if source else None, Field(None, description="the video source")),
        "sources": (
            list[source] | None if source else None,  # type: ignore[valid-type]
            Field(None, min_length=1, description="several sources, one stream each (instead of source)"),
        ),
        "detector": (detector | None if detector else None, Field(None, description="the face detector")),
        "classifier": (
            classifier | None if classifier else None,
            Field(None, description="the per-face classifier"),
        ),
        "sinks": (
            list[sink] if sink else list[None],  # type: ignore[valid-type]
            Field(default_factory=list, description="where results go (at least one)"),
        ),
    }
    return create_model("PipelineDocument", __base__=_DocumentBase, **fields)


def document_model() -> type[BaseModel]:
    """The model of a whole pipeline file for the plugins installed in this process.

    Raises:
        PluginError: a plugin's options clash with the stage keys.
    """
    registry = get_registry()
    model = getattr(registry, "_document_model", None)
    if model is None:
        model = _build_document_model(registry)
        registry._document_model = model  # type: ignore[attr-defined]  # built once per registry
    return model


def pipeline_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of pipeline files for the installed plugins."""
    schema = document_model().model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
