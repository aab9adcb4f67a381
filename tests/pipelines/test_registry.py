from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipelines import registry, tiny
from video_endpoint import settings
from video_endpoint.errors import ModelLoadError


def test_every_family_module_is_registered():
    modules = {p.stem for p in Path(registry.__file__).parent.glob("*.py")} - {
        "__init__", "base", "registry", "speed", "memory", "lora"}  # shared helpers, not families
    assert {family.__name__.rsplit(".", 1)[1] for family in registry.FAMILIES} == modules
    for family in registry.FAMILIES:
        for part in ("FAMILY", "CLASS_NAMES", "load", "check_request", "temporal_ratio", "generate"):
            assert hasattr(family, part), (family, part)
        for class_name in family.CLASS_NAMES:
            assert registry.BY_CLASS_NAME[class_name] is family


def test_every_tiny_model_is_served_by_its_family(tiny_models):
    for model_id in tiny.BUILDERS:
        class_name = json.loads((tiny_models(model_id) / "model_index.json").read_text())["_class_name"]
        assert class_name in registry.BY_CLASS_NAME


def test_source_prefers_the_path_then_the_environment_then_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDEO_MODEL_ID", raising=False)
    assert registry.resolve_source(tmp_path)[0] == settings.BY_NAME["VIDEO_MODEL_ID"].default
    monkeypatch.setenv("VIDEO_MODEL_ID", "someone/some-ltx")
    assert registry.resolve_source(tmp_path)[0] == "someone/some-ltx"
    (tmp_path / "model_index.json").write_text("{}")
    assert registry.resolve_source(tmp_path)[0] == str(tmp_path)


def test_unknown_pipeline_class_names_the_supported_ones(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ModelLoadError, match=r"StableDiffusionPipeline.*HunyuanVideoPipeline, LTX2ImageToVideo"):
        registry.load_model(tmp_path)


def test_tiny_build_is_cached(tmp_path):
    built = tiny.ensure(tmp_path / "tiny")
    stamp = (built / "model_index.json").stat().st_mtime_ns
    assert tiny.ensure(tmp_path / "tiny") == built
    assert (built / "model_index.json").stat().st_mtime_ns == stamp
    assert (built / tiny.MARKER).is_file()


def test_family_can_be_forced_by_environment(tiny_models, monkeypatch):
    directory = str(tiny_models("tiny"))
    monkeypatch.setenv("VIDEO_MODEL_FAMILY", "ltx-video")
    assert registry.family_for(directory, "test")[0].FAMILY == "ltx-video"
    monkeypatch.setenv("VIDEO_MODEL_FAMILY", "sora")
    with pytest.raises(ModelLoadError, match=r"VIDEO_MODEL_FAMILY=sora.*ltx-video, wan, cogvideox, hunyuanvideo"):
        registry.family_for(directory, "test")


@pytest.mark.parametrize("model_id", sorted(tiny.BUILDERS))
def test_every_family_loads_in_the_dtype_asked_for(tiny_models, model_id):
    """What a GPU gets (bfloat16), asked for on CPU: diffusers 0.39 silently ignores an argument it
    does not know (`dtype=` instead of `torch_dtype=`) and would load float32 on the GPU."""
    family, class_name = registry.family_for(str(tiny_models(model_id)), "test")
    pipelines = family.load(str(tiny_models(model_id)), class_name, torch.device("cpu"), torch.bfloat16)
    for pipe in (pipelines.t2v, pipelines.i2v):
        if pipe is not None:
            assert pipe.transformer.dtype == torch.bfloat16, (model_id, pipe.transformer.dtype)
            # Wan keeps its VAE in float32 (its model card's recipe); the others decode in bfloat16
            assert pipe.vae.dtype == (torch.float32 if family.FAMILY == "wan" else torch.bfloat16)
