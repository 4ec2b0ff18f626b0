"""Pipeline YAML validation: every error names the file, the stage and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from vidaffect.config import apply_override, load_config, pipeline_schema, validate
from vidaffect.errors import ConfigError

CLIP = str(Path(__file__).resolve().parent / "conftest.py")  # any existing file
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def pipeline(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": {"type": "video", "uri": CLIP},
        "detector": {"type": "haar"},
        "sinks": [{"type": "record", "path": "out.txt"}],
    }
    data.update(over)
    return data


def test_valid_pipeline(write_pipeline) -> None:
    cfg = load_config(write_pipeline(pipeline()))
    assert [s.kind for s in cfg.stages] == ["source", "detector", "sink"]
    assert cfg.source.plugin.uri == CLIP
    assert cfg.detector is not None and cfg.detector.options.workers == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"detector": {"type": "haar", "min_neighbours": 3}},
            "stage 'detector' › min_neighbours: unknown key (did you mean 'min_neighbors'?)",
        ),
        ({"detector": {"type": "haar", "workrs": 2}}, "(did you mean 'workers'?)"),
        ({"sinks": [{"type": "record", "path": "x", "workers": 2}]}, "a sink runs as one process"),
        ({"detector": {"type": "mtcnnn"}}, "stage 'detector' › type: unknown detector 'mtcnnn'"),
        ({"detector": {"type": "haar", "workers": 0}}, "stage 'detector' › workers: Input should be greater"),
        (
            {"detector": {"type": "haar", "scale_factor": "big"}},
            "› scale_factor: Input should be a valid number",
        ),
        ({"source": {"type": "video"}}, "stage 'source' › uri: required key is missing"),
        (
            {"source": {"type": "video", "uri": "/no/such.mp4"}},
            "stage 'source' › uri: video file not found: /no/such.mp4",
        ),
        ({"source": None}, "stage 'source': required section is missing"),
        ({"sinks": []}, "at least one sink"),
        ({"sinks": [{"type": "record"}]}, "stage 'sinks[0] (record)' › path: required key is missing"),
        ({"detectr": {"type": "haar"}}, "top level › detectr: unknown section (did you mean 'detector'?)"),
        ({"pipeline": {"transport": "udp"}}, "pipeline › transport: Input should be 'ipc' or 'tcp'"),
        (
            {"classifier": {"type": "fer", "checkpoint": "nope"}},
            "checkpoint 'nope' is neither a shipped model",
        ),
        (
            {"tracking": {"detect_evry": 3}},
            "tracking › detect_evry: unknown key (did you mean 'detect_every'?)",
        ),
        (
            {"tracking": {"smoothing": "median"}},
            "tracking › smoothing: Input should be 'ema', 'window' or 'none'",
        ),
        (
            {"detector": {"type": "haar", "stream": "x"}},
            "stage 'detector' › stream: only sources have a stream id",
        ),
        ({"sources": [{"type": "video", "uri": CLIP}]}, "give either 'source' or 'sources', not both"),
    ],
)
def test_errors_name_file_stage_and_key(write_pipeline, change: dict, expected: str) -> None:
    path = write_pipeline(pipeline(**change))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_all_errors_reported_at_once() -> None:
    data = pipeline(detector={"type": "haar", "min_neighbours": 3}, sinks=[{"type": "record"}])
    with pytest.raises(ConfigError) as err:
        validate(data, "p.yaml")
    assert "min_neighbours" in str(err.value) and "path: required" in str(err.value)


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides(write_pipeline) -> None:
    path = write_pipeline(pipeline())
    cfg = load_config(
        path, [f"source.uri={__file__}", "detector.min_neighbors=7", "sinks.0.path=x.txt", "pipeline.hwm=2"]
    )
    assert cfg.source.plugin.uri == __file__
    assert cfg.detector.plugin.min_neighbors == 7
    assert cfg.sinks[0].plugin.path == "x.txt"
    assert cfg.engine.hwm == 2
    with pytest.raises(ConfigError, match=r"pipeline\.yaml \(with --set detectr\.x=1\): invalid pipeline"):
        load_config(path, ["detectr.x=1"])


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("source.uri", "expected KEY=VALUE"),
        ("sinks.5.path=x", "has no item 5"),
        ("source.uri.x=1", "is not a mapping"),
    ],
)
def test_bad_overrides(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_override(pipeline(), assignment)


def test_shipped_configs_validate() -> None:
    root = Path(__file__).resolve().parent.parent / "configs"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        cfg = load_config(f)
        assert cfg.sinks


def test_sources_list_gets_stream_ids_and_stage_names(write_pipeline) -> None:
    data = pipeline(
        sources=[{"type": "video", "uri": CLIP}, {"type": "video", "uri": CLIP, "stream": "door"}],
        tracking={"detect_every": 3},
    )
    del data["source"]
    cfg = load_config(write_pipeline(data))
    assert cfg.streams == ["cam0", "door"]
    assert [s.name for s in cfg.sources] == ["source-cam0", "source-door"]
    assert cfg.tracking is not None and cfg.tracking.detect_every == 3


def test_one_source_uses_pipeline_stream_id(write_pipeline) -> None:
    cfg = load_config(write_pipeline(pipeline(pipeline={"stream_id": "lobby"})))
    assert cfg.streams == ["lobby"] and cfg.source.name == "source"
    assert cfg.tracking is None  # tracking is off unless the file has a tracking section


def test_duplicate_stream_ids_are_an_error(write_pipeline) -> None:
    data = pipeline(
        sources=[{"type": "video", "uri": CLIP, "stream": "a"}, {"type": "video", "uri": CLIP, "stream": "a"}]
    )
    del data["source"]
    with pytest.raises(
        ConfigError, match=r"sources\[1\]' › stream: 'a' is already the stream of sources\[0\]"
    ):
        load_config(write_pipeline(data))


def _builtin_schema(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from vidaffect import plugin_manager

    monkeypatch.delenv("VIDAFFECT_PLUGINS")
    plugin_manager.reset()
    try:
        return pipeline_schema()
    finally:
        plugin_manager.reset()


def test_the_committed_schema_is_the_built_in_plugins_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    committed = json.loads((CONFIGS / "pipeline.schema.json").read_text())
    assert committed == _builtin_schema(monkeypatch), (
        "regenerate: vidaffect schema --out configs/pipeline.schema.json"
    )


def test_the_schema_accepts_the_shipped_configs_and_rejects_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(_builtin_schema(monkeypatch))
    for path in sorted(CONFIGS.glob("*.yaml")):
        assert path.read_text().startswith("# yaml-language-server: $schema=pipeline.schema.json\n")
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, (path, errors[0].message)
    bad = yaml.safe_load((CONFIGS / "video.yaml").read_text())
    bad["detector"]["min_sise"] = 20
    assert any("min_sise" in e.message for e in validator.iter_errors(bad))
    bad = yaml.safe_load((CONFIGS / "video.yaml").read_text())
    bad["sinks"][0]["type"] = "jsonll"
    assert list(validator.iter_errors(bad))


def test_installed_plugins_extend_the_model_and_the_schema() -> None:
    """The testing plugins (VIDAFFECT_PLUGINS=vidaffect.testing, set for every test) add their
    stages to the one model: their options are validated and described like the built-ins'."""
    schema = pipeline_schema()
    record = schema["$defs"]["sink_record"]
    assert record["required"] == ["type", "path"] or set(record["required"]) == {"type", "path"}
    assert {"workers", "on_error", "path"} <= set(record["properties"])
    assert "stream" in schema["$defs"]["source_fake_camera"]["properties"]
    assert "stream" not in schema["$defs"]["detector_haar"]["properties"]
    with pytest.raises(
        ConfigError, match=r"stage 'sinks\[0\] \(record\)' › pth: unknown key \(did you mean 'path'\?\)"
    ):
        validate(pipeline(sinks=[{"type": "record", "pth": "x"}]), "p.yaml")


def test_stages_are_derived_not_edited() -> None:
    """Stage names, kinds and streams come from the validated file; the runtime reads them."""
    data = pipeline(sinks=[{"type": "record", "path": "a"}, {"type": "jsonl", "path": "b"}])
    cfg = validate(data, "p.yaml")
    assert [(s.name, s.kind, s.type) for s in cfg.stages] == [
        ("source", "source", "video"),
        ("detector", "detector", "haar"),
        ("sink-0-record", "sink", "record"),
        ("sink-1-jsonl", "sink", "jsonl"),
    ]
    assert cfg.stage("sink-1-jsonl").plugin.path == "b"  # type: ignore[attr-defined]
    assert cfg.source.stream == "cam0" and "stream" not in cfg.source.plugin_dict
    assert "workers" not in cfg.sinks[0].plugin_dict and cfg.sinks[0].options.workers == 1


@pytest.mark.slow
def test_schema_command_writes_the_schema(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "VIDAFFECT_PLUGINS"}  # the built-ins only
    out = tmp_path / "schema.json"
    proc = subprocess.run(
        [sys.executable, "-m", "vidaffect", "schema", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == json.loads((CONFIGS / "pipeline.schema.json").read_text())
