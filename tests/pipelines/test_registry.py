from __future__ import annotations

import json

import pytest

from errors import ModelLoadError
from pipelines import ltx, registry, tiny


def test_every_family_module_is_registered():
    assert (ltx,) == registry.FAMILIES
    assert {"LTXPipeline": ltx, "LTXImageToVideoPipeline": ltx} == registry.BY_CLASS_NAME


def test_source_prefers_the_path_then_the_environment_then_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv(registry.MODEL_ENV, raising=False)
    assert registry.resolve_source(tmp_path)[0] == registry.DEFAULT_MODEL_ID
    monkeypatch.setenv(registry.MODEL_ENV, "someone/some-ltx")
    assert registry.resolve_source(tmp_path)[0] == "someone/some-ltx"
    (tmp_path / "model_index.json").write_text("{}")
    assert registry.resolve_source(tmp_path)[0] == str(tmp_path)


def test_unknown_pipeline_class_names_the_supported_ones(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ModelLoadError, match=r"StableDiffusionPipeline.*LTXImageToVideoPipeline, LTXPipeline"):
        registry.load_model(tmp_path)


def test_tiny_build_is_cached(tmp_path):
    built = tiny.ensure(tmp_path / "tiny")
    stamp = (built / "model_index.json").stat().st_mtime_ns
    assert tiny.ensure(tmp_path / "tiny") == built
    assert (built / "model_index.json").stat().st_mtime_ns == stamp
    assert (built / tiny.MARKER).is_file()
