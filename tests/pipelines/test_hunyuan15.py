"""HunyuanVideo 1.5 on its tiny random-weight checkpoints (text-to-video and image-to-video are
separate), end to end through the handler."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from pipelines import hunyuan15, registry
from pipelines.tiny.hunyuan15 import qwen_tokenizer
from tests.conftest import jpeg_base64
from tests.media import zip_frames

SMALL = {"prompt": "a red kite over a beach", "height": 64, "width": 96, "num_frames": 10, "num_inference_steps": 2,
         "seed": 3, "outputs": ["zip"]}
KINDS = {"tiny-hunyuan15": ("HunyuanVideo15Pipeline", "t2v"),
         "tiny-hunyuan15-i2v": ("HunyuanVideo15ImageToVideoPipeline", "i2v")}


def request(model_id: str, **change) -> dict:
    inputs = {**SMALL, **change}
    if KINDS[model_id][1] == "i2v":
        inputs.setdefault("image", jpeg_base64())
    return {"inputs": inputs}


@pytest.mark.parametrize("model_id", KINDS)
def test_detected_and_serves_its_own_mode_only(tiny_models, family_handlers, model_id):
    class_name, mode = KINDS[model_id]
    directory = tiny_models(model_id)
    assert json.loads((directory / "model_index.json").read_text())["_class_name"] == class_name
    assert registry.family_for(str(directory), "test") == (hunyuan15, class_name)
    handler = family_handlers(model_id)
    assert handler.model.modes == [mode]
    wrong = {**SMALL, "image": jpeg_base64()} if mode == "t2v" else SMALL
    answer = handler({"inputs": wrong})
    assert answer["ok"] is False and answer["error"]["type"] == "unsupported" and answer["error"]["field"] == "image"


@pytest.mark.parametrize("model_id", KINDS)
def test_exact_frames_and_size_progress_and_determinism(family_handlers, model_id):
    handler = family_handlers(model_id)
    steps: list[tuple[int, int]] = []
    first = handler(request(model_id), on_step=lambda done, total: steps.append((done, total)))
    again = handler(request(model_id))
    # 10 is not 4k+1: 13 generated, 10 returned; the image-to-video pipeline would have picked its own size
    assert zip_frames(first).shape == (10, 64, 96, 3) and first["diagnostics"]["generated_frames"] == 13
    assert steps == [(1, 2), (2, 2)]  # reported from the scheduler: the pipeline takes no callback
    np.testing.assert_array_equal(zip_frames(first), zip_frames(again))
    if model_id.endswith("i2v"):
        other = handler(request(model_id, image=jpeg_base64(width=48, height=80)))
        assert not np.array_equal(zip_frames(other), zip_frames(first))


@pytest.mark.parametrize("model_id", KINDS)
def test_guidance_is_classifier_free_against_the_negative_prompt(family_handlers, model_id):
    handler = family_handlers(model_id)

    def frames(**change):
        return zip_frames(handler(request(model_id, **change)))

    np.testing.assert_array_equal(frames(guidance_scale=1.0), frames(guidance_scale=1.0, negative_prompt="blurry"))
    assert not np.array_equal(frames(guidance_scale=5.0), frames(guidance_scale=5.0, negative_prompt="blurry"))
    assert not np.array_equal(frames(guidance_scale=5.0), frames(guidance_scale=2.0))


def test_quoted_text_goes_through_the_glyph_encoder(family_handlers):
    handler = family_handlers("tiny-hunyuan15")
    plain = zip_frames(handler(request("tiny-hunyuan15", prompt="a shop sign that says OPEN")))
    quoted = zip_frames(handler(request("tiny-hunyuan15", prompt='a shop sign that says "OPEN"')))
    assert not np.array_equal(plain, quoted)


def test_the_tiny_tokenizer_puts_the_prompt_where_the_pipeline_cuts():
    """The pipeline drops the template's first 108 tokens: the tiny tokenizer must make them 108 too."""
    from diffusers import HunyuanVideo15Pipeline
    from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5 import format_text_input

    tokenizer = qwen_tokenizer()
    system = inspect.signature(HunyuanVideo15Pipeline._get_mllm_prompt_embeds).parameters["system_message"].default
    # return_dict=False: the ids themselves (transformers 5 answers a BatchEncoding by default, 4.x the ids)
    [ids] = tokenizer.apply_chat_template(format_text_input(["a red kite"], system), add_generation_prompt=True,
                                          return_dict=False)
    prompt = tokenizer("a red kite", add_special_tokens=False)["input_ids"]
    assert ids[108:108 + len(prompt)] == prompt
