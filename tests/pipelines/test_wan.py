"""Wan 2.1 / 2.2 on tiny random-weight checkpoints of each kind, end to end through the handler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipelines import registry, wan
from tests.conftest import jpeg_base64
from tests.media import zip_frames

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
