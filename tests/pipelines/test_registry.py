from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipelines import registry, tiny
from pipelines.base import ModelFamily, SpeedSettings
from pipelines.errors import ModelLoadError


def test_every_family_module_is_registered():
    modules = {p.stem for p in Path(registry.__file__).parent.glob("*.py")} - {
        "__init__", "base", "errors", "model", "registry", "speed", "memory", "lora"}  # shared helpers, not families
    assert {family.__name__.rsplit(".", 1)[1] for family in registry.FAMILIES} == modules
    members = [name for name in vars(ModelFamily) if not name.startswith("_")]  # the Protocol's own list
    assert {"FAMILY", "CLASS_NAMES", "AUDIO", "load", "check_request", "frame_count", "generate"} <= set(members)
    for family in registry.FAMILIES:
        for part in members:
            assert hasattr(family, part), (family, part)
        for class_name in family.CLASS_NAMES:
            assert registry.BY_CLASS_NAME[class_name] is family


def test_every_tiny_model_is_served_by_its_family(tiny_models):
    for model_id in filter(tiny.buildable, tiny.BUILDERS):
        class_name = json.loads((tiny_models(model_id) / "model_index.json").read_text())["_class_name"]
        assert class_name in registry.BY_CLASS_NAME


def test_unknown_pipeline_class_names_the_supported_ones(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    listed = r"StableDiffusionPipeline.*HunyuanVideoPipeline, Kandinsky5I2VPipeline.*LTX2ImageToVideo"
    with pytest.raises(ModelLoadError, match=listed):
        registry.load_model(str(tmp_path), "test", torch.device("cpu"), torch.float32, SpeedSettings())


def test_tiny_build_is_cached(tmp_path):
    built = tiny.ensure(tmp_path / "tiny")
    stamp = (built / "model_index.json").stat().st_mtime_ns
    assert tiny.ensure(tmp_path / "tiny") == built
    assert (built / "model_index.json").stat().st_mtime_ns == stamp
    assert (built / tiny.MARKER).is_file()


def test_family_can_be_forced(tiny_models):
    directory = str(tiny_models("tiny"))
    assert registry.family_for(directory, "test", forced="ltx-video")[0].FAMILY == "ltx-video"
    with pytest.raises(ModelLoadError, match=r"'sora'.*ltx-video, wan, cogvideox, hunyuanvideo"):
        registry.family_for(directory, "test", forced="sora")


@pytest.mark.parametrize("model_id", sorted(tiny.BUILDERS))
def test_every_family_loads_in_the_dtype_asked_for(tiny_models, model_id):
    """What a GPU gets (bfloat16), asked for on CPU: diffusers 0.39 silently ignores an argument it
    does not know (`dtype=` instead of `torch_dtype=`) and would load float32 on the GPU."""
    if not tiny.buildable(model_id):
        pytest.skip(f"{model_id} needs diffusers >= {tiny.NEEDS_DIFFUSERS[model_id]} (the current generation)")
    family, class_name = registry.family_for(str(tiny_models(model_id)), "test")
    pipelines = family.load(str(tiny_models(model_id)), class_name, torch.device("cpu"), torch.bfloat16)
    for pipe in (pipelines.t2v, pipelines.i2v):
        if pipe is not None:
            assert pipe.transformer.dtype == torch.bfloat16, (model_id, pipe.transformer.dtype)
            # Wan keeps its VAE in float32 (its model card's recipe); the others decode in bfloat16
            assert pipe.vae.dtype == (torch.float32 if family.FAMILY == "wan" else torch.bfloat16)
    # the frame rule: never fewer than asked, and a count the family made is one it makes as is
    for requested in range(1, 42):
        count = family.frame_count(pipelines, requested)
        assert count.generated >= requested, (model_id, requested, count)
        assert family.frame_count(pipelines, count.generated).generated == count.generated, (model_id, count)


LTX25_INDEX = {"_class_name": "LTX2Pipeline", "text_encoder": ["transformers", "Gemma4UnifiedForConditionalGeneration"],
               "duration_head": ["diffusers", "LTX2DurationHead"]}


@pytest.mark.skipif(tiny.buildable("tiny-kandinsky6"), reason="the toolkit generation's start-up error")
@pytest.mark.parametrize(("model_index", "family", "needs"), [
    ({"_class_name": "Kandinsky6TI2VAPipeline"}, "kandinsky-6", ["diffusers >= 0.42 (installed: 0.39.0)"]),
    (LTX25_INDEX, "ltx-2", ["diffusers >= 0.40 (installed: 0.39.0)", "transformers >= 5.0 (installed: 4."]),
])
def test_a_checkpoint_of_the_current_generation_stops_start_up_in_one_line_on_the_toolkit_one(
        tmp_path, model_index, family, needs):
    """Kandinsky 6 is in diffusers from 0.42, LTX-2.5 (an LTX-2 checkpoint with a Gemma 4 text encoder)
    needs 0.40 and transformers 5; the toolkit generation pins 0.39 and 4.57: start-up says what the
    checkpoint needs and where it runs, before anything is loaded."""
    from video_endpoint.endpoint import EndpointHandler

    (tmp_path / "model_index.json").write_text(json.dumps(model_index))
    with pytest.raises(ModelLoadError) as stopped:
        EndpointHandler(str(tmp_path))
    message = str(stopped.value)
    assert "\n" not in message and f"is a {family} checkpoint" in message and "--container hf-serve" in message
    for part in needs:
        assert part in message, message
