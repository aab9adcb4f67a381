"""Kandinsky 5.0 on its tiny random-weight checkpoints (text-to-video and image-to-video are separate),
end to end through the handler, against diffusers' own pipelines on the same weights."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from diffusers import Kandinsky5I2VPipeline, Kandinsky5T2VPipeline
from PIL import Image

from pipelines import kandinsky5, registry
from tests.conftest import jpeg_base64
from tests.media import zip_frames
from tests.pipelines.family_checks import check_one_lora

SMALL = {"prompt": "a red kite over a beach", "height": 32, "width": 64, "num_frames": 9, "num_inference_steps": 2,
         "guidance_scale": 5.0, "seed": 3, "outputs": ["zip"]}
KINDS = {"tiny-kandinsky5": (Kandinsky5T2VPipeline, "t2v"), "tiny-kandinsky5-i2v": (Kandinsky5I2VPipeline, "i2v")}


def request(model_id: str, **change) -> dict:
    inputs = {**SMALL, **change}
    if KINDS[model_id][1] == "i2v":
        inputs.setdefault("image", jpeg_base64(width=inputs["width"], height=inputs["height"]))
    return {"inputs": inputs}


def diffusers_video(directory, model_id: str, num_frames: int) -> np.ndarray:
    """diffusers' pipeline on the checkpoint, called as its documentation shows (the tokenizer given
    as the family loads it): float frames."""
    pipeline_class, mode = KINDS[model_id]
    pipe = kandinsky5.load(str(directory), pipeline_class.__name__, torch.device("cpu"), torch.float32).any
    args = {"prompt": SMALL["prompt"], "height": SMALL["height"], "width": SMALL["width"], "num_frames": num_frames,
            "num_inference_steps": SMALL["num_inference_steps"], "guidance_scale": SMALL["guidance_scale"],
            "generator": torch.Generator("cpu").manual_seed(SMALL["seed"]), "output_type": "np"}
    if mode == "i2v":
        jpeg = base64.b64decode(jpeg_base64(width=SMALL["width"], height=SMALL["height"]))
        args["image"] = Image.open(io.BytesIO(jpeg)).convert("RGB")
    return pipe(**args).frames[0]


def as_uint8(video: np.ndarray) -> np.ndarray:
    return np.round(np.clip(video, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("model_id", KINDS)
def test_detected_and_serves_its_own_mode_only(tiny_models, family_handlers, model_id):
    pipeline_class, mode = KINDS[model_id]
    directory = tiny_models(model_id)
    index = json.loads((directory / "model_index.json").read_text())
    assert index["_class_name"] == pipeline_class.__name__
    assert index["tokenizer"] == ["transformers", "Qwen2VLProcessor"]  # as released; loaded without torchvision
    assert registry.family_for(str(directory), "test") == (kandinsky5, pipeline_class.__name__)
    handler = family_handlers(model_id)
    assert handler.model.modes == [mode]
    wrong = {**SMALL, "image": jpeg_base64()} if mode == "t2v" else SMALL
    answer = handler({"inputs": wrong})
    assert answer["ok"] is False and answer["error"]["type"] == "unsupported" and answer["error"]["field"] == "image"


def test_text_to_video_is_diffusers_own_output_with_exact_frames(tiny_models, family_handlers):
    handler = family_handlers("tiny-kandinsky5")
    steps: list[tuple[int, int]] = []
    answer = handler(request("tiny-kandinsky5", num_frames=7), on_step=lambda done, total: steps.append((done, total)))
    frames = zip_frames(answer)
    # 7 is not 4k+1: 9 generated, the first 7 returned
    assert frames.shape == (7, 32, 64, 3) and answer["diagnostics"]["generated_frames"] == 9
    assert steps == [(1, 2), (2, 2)]
    expected = as_uint8(diffusers_video(tiny_models("tiny-kandinsky5"), "tiny-kandinsky5", 9))
    np.testing.assert_allclose(frames.astype(int), expected[:7].astype(int), atol=1)
    np.testing.assert_array_equal(frames, zip_frames(handler(request("tiny-kandinsky5", num_frames=7))))


def test_a_short_image_to_video_clip_is_made_at_17_frames_and_cut(tiny_models, family_handlers):
    """diffusers' I2V pipeline renormalizes the first 4 latent frames against the next ones: with
    fewer than 5 latent frames there are none and the whole clip is NaN."""
    directory = tiny_models("tiny-kandinsky5-i2v")
    assert np.isnan(diffusers_video(directory, "tiny-kandinsky5-i2v", 9)).all()
    handler = family_handlers("tiny-kandinsky5-i2v")
    answer = handler(request("tiny-kandinsky5-i2v"))
    frames = zip_frames(answer)
    assert frames.shape == (9, 32, 64, 3) and answer["diagnostics"]["generated_frames"] == 17
    assert frames.std() > 0
    expected = as_uint8(diffusers_video(directory, "tiny-kandinsky5-i2v", 17))
    np.testing.assert_allclose(frames.astype(int), expected[:9].astype(int), atol=1)
    green = io.BytesIO()
    Image.new("RGB", (64, 32), (10, 200, 40)).save(green, format="PNG")
    other = zip_frames(handler(request("tiny-kandinsky5-i2v", image=base64.b64encode(green.getvalue()).decode())))
    assert not np.array_equal(other[0], frames[0])  # the first frame follows the image
    assert zip_frames(handler(request("tiny-kandinsky5-i2v", num_frames=21))).shape[0] == 21  # 4k+1 >= 17: as asked


@pytest.mark.parametrize("model_id", KINDS)
def test_guidance_and_the_pipeline_s_own_negative_prompt(family_handlers, model_id):
    handler = family_handlers(model_id)

    def frames(**change):
        return zip_frames(handler(request(model_id, **change)))

    default_negative = "Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, low quality, " \
                       "ugly, deformed, walking backwards"
    np.testing.assert_array_equal(frames(), frames(negative_prompt=default_negative))  # none sent: the model's own
    assert not np.array_equal(frames(), frames(negative_prompt="blurry"))
    np.testing.assert_array_equal(frames(guidance_scale=1.0), frames(guidance_scale=1.0, negative_prompt="blurry"))


def test_the_tiny_tokenizer_puts_the_prompt_where_the_pipeline_cuts(family_handlers):
    """The pipelines drop the template's first `prompt_template_encode_start_idx` tokens (129 on
    diffusers 0.39, 128 on 0.40 and later): the tiny tokenizer makes the template exactly that long."""
    pipe = family_handlers("tiny-kandinsky5").model.pipelines.any
    prefix = pipe.prompt_template.split("{}")[0]
    assert len(pipe.tokenizer.tokenizer(prefix)["input_ids"]) == pipe.prompt_template_encode_start_idx
    with pytest.raises(ValueError, match="only text"):
        pipe.tokenizer(["x"], images=[Image.new("RGB", (8, 8))])


def test_lora_adapters_change_the_frames_and_leave_nothing_behind(tiny_models, tmp_path):
    check_one_lora(tiny_models("tiny-kandinsky5"), tmp_path / "kandinsky5", request("tiny-kandinsky5")["inputs"],
                   targets=("to_query", "to_value"))


def test_the_step_cache_is_refused_at_start_up_where_diffusers_cannot_run_it(tiny_models):
    """diffusers' first-block cache reads a block argument named hidden_states, which Kandinsky's
    blocks do not have: every request would fail, so start-up stops instead."""
    from pipelines.base import SpeedSettings
    from pipelines.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"VIDEO_STEP_CACHE cannot be used with this model.*has none"):
        registry.load_model(str(tiny_models("tiny-kandinsky5")), "test", torch.device("cpu"), torch.float32,
                            SpeedSettings(step_cache=0.1))
