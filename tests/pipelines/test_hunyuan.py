"""HunyuanVideo on tiny random-weight checkpoints of each kind, end to end through the handler."""

from __future__ import annotations

import numpy as np
import pytest
from diffusers.pipelines.hunyuan_video import pipeline_hunyuan_video, pipeline_hunyuan_video_image2video

from pipelines import hunyuan, registry
from tests.conftest import jpeg_base64
from tests.media import zip_frames

SMALL = {"height": 64, "width": 96, "num_inference_steps": 2, "seed": 9, "outputs": ["zip"]}
KINDS = {"tiny-hunyuan": "HunyuanVideoPipeline", "tiny-hunyuan-i2v": "HunyuanVideoImageToVideoPipeline",
         "tiny-hunyuan-i2v-33ch": "HunyuanVideoImageToVideoPipeline"}
IMAGE_TO_VIDEO = ["tiny-hunyuan-i2v", "tiny-hunyuan-i2v-33ch"]


@pytest.mark.parametrize("model_id", KINDS)
def test_detected_from_model_index(tiny_models, model_id):
    assert registry.family_for(str(tiny_models(model_id)), "test") == (hunyuan, KINDS[model_id])


@pytest.mark.parametrize(("model_id", "template"), [
    ("tiny-hunyuan", pipeline_hunyuan_video.DEFAULT_PROMPT_TEMPLATE),
    ("tiny-hunyuan-i2v", pipeline_hunyuan_video_image2video.DEFAULT_PROMPT_TEMPLATE)])
def test_tiny_tokenizer_crops_where_the_real_one_does(family_handlers, model_id, template):
    """The pipelines cut the system prompt off at a fixed token count (crop_start, counted with
    Llama 3's tokenizer): the tiny tokenizer must split the template into as many tokens."""
    tokenizer = family_handlers(model_id).model.pipelines.any.tokenizer
    system_part = template["template"].split("{}")[0]
    assert len(tokenizer(system_part).input_ids) == template["crop_start"]


@pytest.mark.parametrize("model_id", ["tiny-hunyuan", "tiny-hunyuan-i2v"])
def test_loaded_llama_tokenizer_keeps_the_spaces(family_handlers, model_id):
    """transformers 5 loads a Llama 3 tokenizer filed as LlamaTokenizerFast with SentencePiece's
    pre-tokenizer, which drops spaces; the family loads it as tokenizer.json says."""
    tokenizer = family_handlers(model_id).model.pipelines.any.tokenizer
    ids = tokenizer("a cat walking across a wooden table", add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == "a cat walking across a wooden table"


def test_text_to_video_exact_frames_and_determinism(family_handlers):
    handler = family_handlers("tiny-hunyuan")
    assert handler.model.modes == ["t2v"]
    inputs = {"prompt": "a lighthouse at night", **SMALL, "num_frames": 14}  # 14 is not 4k+1: 17 generated
    first, again = handler({"inputs": inputs}), handler({"inputs": inputs})
    assert zip_frames(first).shape == (14, 64, 96, 3)
    np.testing.assert_array_equal(zip_frames(first), zip_frames(again))
    assert first["diagnostics"]["generated_frames"] == 17
    assert first["diagnostics"]["model"]["family"] == "hunyuanvideo"


@pytest.mark.parametrize("model_id", IMAGE_TO_VIDEO)
def test_image_to_video_exact_frames_determinism_and_image(family_handlers, model_id):
    handler = family_handlers(model_id)
    assert handler.model.modes == ["i2v"]
    inputs = {"prompt": "a lighthouse at night", **SMALL, "num_frames": 10, "image": jpeg_base64()}
    first, again = handler({"inputs": inputs}), handler({"inputs": inputs})
    other_image = handler({"inputs": {**inputs, "image": jpeg_base64(width=48, height=80)}})
    # latent_concat decodes 4 frames fewer than asked: the family asks for 4 more, 13 still come back
    assert zip_frames(first).shape == (10, 64, 96, 3)
    assert (first["diagnostics"]["mode"], first["diagnostics"]["generated_frames"]) == ("i2v", 13)
    np.testing.assert_array_equal(zip_frames(first), zip_frames(again))
    assert not np.array_equal(zip_frames(first), zip_frames(other_image))


@pytest.mark.parametrize("model_id", ["tiny-hunyuan", "tiny-hunyuan-i2v"])
def test_guidance_distilled_models_ignore_the_negative_prompt_and_say_so(family_handlers, model_id):
    handler = family_handlers(model_id)
    inputs = {"prompt": "x", **SMALL, "num_frames": 1}
    if model_id in IMAGE_TO_VIDEO:
        inputs["image"] = jpeg_base64()
    plain = handler({"inputs": inputs})
    with_negative = handler({"inputs": {**inputs, "negative_prompt": "blurry"}})
    np.testing.assert_array_equal(zip_frames(plain), zip_frames(with_negative))
    assert any("negative_prompt is ignored" in note for note in with_negative["diagnostics"]["adjusted"])


def test_33ch_runs_true_guidance_against_the_negative_prompt(family_handlers):
    handler = family_handlers("tiny-hunyuan-i2v-33ch")
    inputs = {"prompt": "x", **SMALL, "num_frames": 1, "image": jpeg_base64(), "guidance_scale": 5.0}
    plain = handler({"inputs": inputs})
    with_negative = handler({"inputs": {**inputs, "negative_prompt": "blurry"}})
    assert not np.array_equal(zip_frames(plain), zip_frames(with_negative))
    assert not any("negative_prompt" in note for note in with_negative["diagnostics"]["adjusted"])
    # at guidance 1 there is no unconditional pass, so the negative prompt changes nothing
    unguided = {**inputs, "guidance_scale": 1.0}
    np.testing.assert_array_equal(zip_frames(handler({"inputs": unguided})),
                                  zip_frames(handler({"inputs": {**unguided, "negative_prompt": "blurry"}})))


def test_wrong_mode_is_unsupported(family_handlers):
    with_image = family_handlers("tiny-hunyuan")({"inputs": {"prompt": "x", **SMALL, "num_frames": 1,
                                                             "image": jpeg_base64()}})
    assert (with_image["error"]["type"], with_image["error"]["field"]) == ("unsupported", "image")
    without = family_handlers("tiny-hunyuan-i2v")({"inputs": {"prompt": "x", **SMALL, "num_frames": 1}})
    assert (without["error"]["type"], without["error"]["field"]) == ("unsupported", "image")
    assert "text-to-video" in without["error"]["message"]
