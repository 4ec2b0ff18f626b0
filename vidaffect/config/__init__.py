"""Pipeline configuration: YAML -> one validated model -> :class:`PipelineConfig`.

A pipeline file has the stage sections ``source`` (or ``sources``), ``detector``, ``classifier``
and ``sinks``, the engine settings (``pipeline``) and optionally ``tracking``. Each stage names
its plugin with ``type``; its other keys are the engine's stage keys (``workers``,
``on_error``, ...) and the plugin's own options. The whole file is one pydantic model built from
the installed plugins (:func:`document_model`; its JSON Schema: :func:`pipeline_schema`,
``vidaffect schema``). Every problem is reported at once, as ``FILE: stage › key: message``
with a "did you mean" for misspelt keys, before any process starts
(:class:`vidaffect.errors.ConfigError`).
"""

from vidaffect.config.document import document_model, pipeline_schema
from vidaffect.config.load import apply_override, load_config, validate
from vidaffect.config.pipeline import PipelineConfig, StageConfig
from vidaffect.config.settings import EngineSettings, StageKeys, TrackingSettings

__all__ = [
    "EngineSettings",
    "PipelineConfig",
    "StageConfig",
    "StageKeys",
    "TrackingSettings",
    "apply_override",
    "document_model",
    "load_config",
    "pipeline_schema",
    "validate",
]
