from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines import ltx
from pipelines.base import GenerationJob, causal_vae_frames
from video_endpoint import model_loading


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return model_loading.load_model(str(tiny_model_dir))


def job(**overrides) -> GenerationJob:
    fields = dict(prompt="a red balloon", negative_prompt="", image=None, height=64, width=96,
                  num_frames=9, fps=12, num_inference_steps=2, guidance_scale=7.5, seed=1)
    return GenerationJob(**{**fields, **overrides})


def test_tiny_model_is_a_real_diffusers_checkpoint(tiny_model_dir):
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "LTXPipeline"
    assert sorted(p.name for p in tiny_model_dir.rglob("*.safetensors"))
    assert not list(tiny_model_dir.rglob("*.bin")) and not list(tiny_model_dir.rglob("*.pt"))


def test_frame_counts_are_the_smallest_valid_8k_plus_1(model):
    assert model.pipelines.t2v.vae_temporal_compression_ratio == 8  # the real LTX-Video ratio
    for requested in range(1, 60):
        count = ltx.frame_count(model.pipelines, requested)
        assert count == causal_vae_frames(requested, 8) and count.rule == "8k+1"
        generated = count.generated
        assert generated >= requested and (generated - 1) % 8 == 0 and generated - requested < 8


def test_generation_shape_range_and_determinism(model):
    first = ltx.generate(model.pipelines, job(), lambda step, total: None)
    again = ltx.generate(model.pipelines, job(), lambda step, total: None)
    other = ltx.generate(model.pipelines, job(seed=2), lambda step, total: None)
    assert first.shape == (1, 9, 3, 64, 96)
    assert float(first.min()) >= 0 and float(first.max()) <= 1
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_image_to_video_uses_the_shared_pipeline_and_reports_steps(model):
    steps = []
    image = Image.fromarray(np.full((64, 96, 3), 200, np.uint8))
    video = ltx.generate(model.pipelines, job(image=image, num_inference_steps=3),
                         lambda step, total: steps.append((step, total)))
    assert video.shape == (1, 9, 3, 64, 96)
    assert steps == [(1, 3), (2, 3), (3, 3)]


def test_uint8_frames_keep_exactly_the_requested_count(model):
    generated = model.generate(job(num_frames=17, keep_frames=12))
    assert generated.frames.shape == (12, 64, 96, 3) and generated.frames.dtype == np.uint8
    assert generated.frames.flags.c_contiguous
    assert generated.generated_frames == 17
    assert set(generated.timing_ms) == {"denoise", "vae_decode"}


def test_image_to_video_keeps_the_loaded_dtype(tiny_model_dir):
    # bf16 is what a GPU gets; from_pipe must not cast the shared weights back to float32
    pipelines = ltx.load(str(tiny_model_dir), "LTXPipeline", torch.device("cpu"), torch.bfloat16)
    assert pipelines.i2v.transformer is pipelines.t2v.transformer
    assert pipelines.t2v.transformer.dtype == torch.bfloat16
    assert pipelines.t2v.vae.dtype == torch.bfloat16
