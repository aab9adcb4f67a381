"""Wan 2.1 / 2.2 on tiny random-weight checkpoints of each kind, end to end through the handler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipelines import registry, wan
from tests.conftest import jpeg_base64
from tests.media import pipeline_frames, zip_frames

SMALL = {"height": 64, "width": 96, "num_inference_steps": 2, "seed": 3, "outputs": ["zip"]}
KINDS = {"tiny-wan": ["t2v"], "tiny-wan-i2v": ["i2v"], "tiny-wan-ti2v": ["t2v", "i2v"]}




@pytest.mark.parametrize(("model_id", "class_name"), [("tiny-wan", "WanPipeline"),
                                                      ("tiny-wan-i2v", "WanImageToVideoPipeline"),
                                                      ("tiny-wan-ti2v", "WanPipeline")])
def test_detected_from_model_index(tiny_models, model_id, class_name):
    directory = tiny_models(model_id)
    assert json.loads((directory / "model_index.json").read_text())["_class_name"] == class_name
    family, found = registry.family_for(str(directory), "test")
    assert (family, found) == (wan, class_name)


@pytest.mark.parametrize("model_id", KINDS)
def test_modes_frames_and_determinism(family_handlers, model_id):
    handler = family_handlers(model_id)
    assert handler.model.modes == KINDS[model_id]
    for mode in KINDS[model_id]:
        inputs = {"prompt": "waves", **SMALL, "num_frames": 10}  # 10 is not 4k+1: 13 are generated
        if mode == "i2v":
            inputs["image"] = jpeg_base64()
        first = handler({"inputs": inputs})
        again = handler({"inputs": inputs})
        assert zip_frames(first).shape == (10, 64, 96, 3)
        np.testing.assert_array_equal(zip_frames(first), zip_frames(again))
        diagnostics = first["diagnostics"]
        assert (diagnostics["mode"], diagnostics["generated_frames"]) == (mode, 13)
        assert diagnostics["model"]["family"] == "wan" and diagnostics["model"]["modes"] == KINDS[model_id]


def test_text_only_checkpoint_refuses_an_image(family_handlers):
    result = family_handlers("tiny-wan")({"inputs": {"prompt": "x", **SMALL, "num_frames": 1,
                                                     "image": jpeg_base64()}})
    assert result["ok"] is False
    assert (result["error"]["type"], result["error"]["field"]) == ("unsupported", "image")
    assert "image-to-video" in result["error"]["message"] and "WanPipeline" in result["error"]["message"]
    assert "/" not in result["error"]["message"]  # the model is named, its directory path is not


def test_image_only_checkpoint_asks_for_an_image(family_handlers):
    result = family_handlers("tiny-wan-i2v")({"inputs": {"prompt": "x", **SMALL, "num_frames": 1}})
    assert (result["error"]["type"], result["error"]["field"]) == ("unsupported", "image")
    assert "text-to-video" in result["error"]["message"]


def test_ti2v_shares_its_weights_and_keeps_the_vae_in_float32(tiny_models):
    pipelines = wan.load(str(tiny_models("tiny-wan-ti2v")), "WanPipeline", torch.device("cpu"), torch.bfloat16)
    assert pipelines.i2v.transformer is pipelines.t2v.transformer
    assert pipelines.t2v.transformer.dtype == torch.bfloat16
    assert pipelines.t2v.vae.dtype == torch.float32 and pipelines.i2v.vae is pipelines.t2v.vae


def test_ti2v_size_rule_is_read_from_the_model(family_handlers):
    handler = family_handlers("tiny-wan-ti2v")
    assert wan._spatial_multiple(handler.model.pipelines) == 32  # 16x VAE, 2x patch
    assert wan._spatial_multiple(family_handlers("tiny-wan").model.pipelines) == 16


def test_first_and_last_frame_on_an_flf2v_checkpoint(family_handlers):
    from diffusers import WanImageToVideoPipeline

    from video_endpoint.image_input import decode_image
    from video_endpoint.request_schema import Limits

    handler = family_handlers("tiny-wan-flf2v")
    first, last = jpeg_base64(96, 64), jpeg_base64(64, 96)
    answer = handler({"inputs": {"prompt": "waves", **SMALL, "num_frames": 9, "image": first, "last_image": last}})
    pipe = handler.model.pipelines.i2v
    assert isinstance(pipe, WanImageToVideoPipeline)
    expected = pipe(image=decode_image(first, 96, 64, Limits()), last_image=decode_image(last, 96, 64, Limits()),
                    prompt="waves", negative_prompt="", height=64, width=96, num_frames=9, num_inference_steps=2,
                    guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(3), output_type="pt").frames
    np.testing.assert_array_equal(zip_frames(answer), pipeline_frames(expected))
    assert answer["diagnostics"]["mode"] == "flf2v"
    # its transformer embeds exactly two images: without the last one it is refused, by field
    no_last = handler({"inputs": {"prompt": "waves", **SMALL, "num_frames": 9, "image": first}})
    assert (no_last["ok"], no_last["error"]["field"]) == (False, "last_image")
    # 10 frames: 13 generated, and the last image is the 13th
    rounded = handler({"inputs": {"prompt": "waves", **SMALL, "num_frames": 10, "image": first, "last_image": last}})
    assert any("ask for a 4k+1 num_frames" in note for note in rounded["diagnostics"]["adjusted"])


@pytest.mark.parametrize(("model_id", "field"), [("tiny-wan", "last_image"), ("tiny-wan-i2v", "last_image"),
                                                  ("tiny-wan-ti2v", "last_image"), ("tiny-wan-i2v", "video"),
                                                  ("tiny-wan-flf2v", "keyframes"), ("tiny-wan", "extend")])
def test_what_a_checkpoint_cannot_do_is_unsupported_by_field(family_handlers, model_id, field):
    from tests.media import synthetic_clip, video_base64

    values = {"last_image": jpeg_base64(), "video": video_base64(synthetic_clip(12, 64, 96), 12),
              "extend": video_base64(synthetic_clip(12, 64, 96), 12),
              "keyframes": [{"image": jpeg_base64(), "frame": 3}]}
    inputs = {"prompt": "waves", **SMALL, "num_frames": 9, field: values[field]}
    if field == "last_image":
        inputs["image"] = jpeg_base64()
    answer = family_handlers(model_id)({"inputs": inputs})
    assert answer["ok"] is False and answer["error"]["type"] == "unsupported", answer
    assert answer["error"]["field"] == field


def test_video_to_video_on_text_to_video_weights(family_handlers):
    from diffusers import WanVideoToVideoPipeline

    from tests.media import synthetic_clip, video_base64
    from video_endpoint.request_schema import Limits
    from video_endpoint.video_input import read_video

    handler = family_handlers("tiny-wan")
    clip = video_base64(synthetic_clip(12, 64, 96, seed=4), 12)
    answer = handler({"inputs": {"prompt": "waves", **SMALL, "num_frames": 9, "video": clip, "strength": 0.7}})
    pipe = handler.model.pipelines.derived["v2v"]
    assert isinstance(pipe, WanVideoToVideoPipeline) and pipe.transformer is handler.model.pipelines.t2v.transformer
    source = read_video(clip, "video", 96, 64, 12, Limits(), count=9).frames
    expected = pipe(video=source, strength=0.7, prompt="waves", negative_prompt="", height=64, width=96,
                    num_inference_steps=2, guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(3),
                    output_type="pt").frames
    np.testing.assert_array_equal(zip_frames(answer), pipeline_frames(expected))
    assert answer["diagnostics"]["mode"] == "v2v" and pipe.vae.dtype == torch.float32
