"""CogVideoX on tiny random-weight checkpoints (2B-shaped text-to-video, 5B-I2V-shaped
image-to-video), end to end through the handler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines import cogvideox, registry
from tests.conftest import jpeg_base64
from tests.media import pipeline_frames, zip_frames

SMALL = {"height": 64, "width": 96, "num_inference_steps": 2, "seed": 5, "outputs": ["zip"]}




@pytest.mark.parametrize(("model_id", "class_name", "mode"), [
    ("tiny-cogvideox", "CogVideoXPipeline", "t2v"),
    ("tiny-cogvideox-i2v", "CogVideoXImageToVideoPipeline", "i2v"),
])
def test_detection_mode_exact_frames_and_determinism(tiny_models, family_handlers, model_id, class_name, mode):
    assert registry.family_for(str(tiny_models(model_id)), "test") == (cogvideox, class_name)
    handler = family_handlers(model_id)
    assert handler.model.modes == [mode]
    inputs = {"prompt": "a red balloon", **SMALL, "num_frames": 32}  # 32 is not 4k+1: 33 generated
    if mode == "i2v":
        inputs["image"] = jpeg_base64()
    first, again = handler({"inputs": inputs}), handler({"inputs": inputs})
    assert zip_frames(first).shape == (32, 64, 96, 3)
    np.testing.assert_array_equal(zip_frames(first), zip_frames(again))
    assert (first["diagnostics"]["generated_frames"], first["diagnostics"]["mode"]) == (33, mode)
    other = handler({"inputs": {**inputs, "seed": 6}})
    assert not np.array_equal(zip_frames(first), zip_frames(other))


def test_each_checkpoint_refuses_the_other_mode(family_handlers):
    with_image = family_handlers("tiny-cogvideox")({"inputs": {"prompt": "x", **SMALL, "num_frames": 1,
                                                               "image": jpeg_base64()}})
    without = family_handlers("tiny-cogvideox-i2v")({"inputs": {"prompt": "x", **SMALL, "num_frames": 1}})
    for result in (with_image, without):
        assert (result["error"]["type"], result["error"]["field"]) == ("unsupported", "image")
        assert "cogvideox" in result["error"]["message"]


def test_learned_positional_embeddings_fix_the_size(family_handlers):
    result = family_handlers("tiny-cogvideox-i2v")({"inputs": {"prompt": "x", **SMALL, "height": 128,
                                                               "num_frames": 1, "image": jpeg_base64()}})
    assert (result["error"]["type"], result["error"]["field"]) == ("invalid_request", "height")
    assert "height 64, width 96" in result["error"]["message"]
    # the text-to-video checkpoint (sinusoidal embeddings) takes any size
    assert family_handlers("tiny-cogvideox")({"inputs": {"prompt": "x", **SMALL, "height": 128,
                                                         "num_frames": 1}})["ok"] is True


def test_video_to_video_on_text_to_video_weights_only(family_handlers):
    from diffusers import CogVideoXVideoToVideoPipeline

    from tests.media import synthetic_clip, video_base64
    from video_endpoint.request_schema import Limits
    from video_endpoint.video_input import read_video

    handler = family_handlers("tiny-cogvideox")
    clip = video_base64(synthetic_clip(12, 64, 96, seed=4), 12)
    answer = handler({"inputs": {"prompt": "a red balloon", **SMALL, "num_frames": 9, "video": clip,
                                 "strength": 0.5}})
    pipe = handler.model.pipelines.derived["v2v"]
    assert isinstance(pipe, CogVideoXVideoToVideoPipeline)
    source = read_video(clip, "video", 96, 64, 12, Limits(), count=9).frames
    expected = pipe(video=source, strength=0.5, prompt="a red balloon", negative_prompt="", height=64, width=96,
                    num_inference_steps=2, guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(5),
                    output_type="pt", max_sequence_length=226).frames
    np.testing.assert_array_equal(zip_frames(answer), pipeline_frames(expected))
    assert answer["diagnostics"]["mode"] == "v2v"
    image_only = family_handlers("tiny-cogvideox-i2v")
    refused = image_only({"inputs": {"prompt": "x", **SMALL, "num_frames": 9, "video": clip}})
    assert (refused["error"]["type"], refused["error"]["field"]) == ("unsupported", "video")
    for field, value in (("last_image", jpeg_base64()), ("extend", clip)):
        refused = handler({"inputs": {"prompt": "x", **SMALL, field: value}})
        assert (refused["error"]["type"], refused["error"]["field"]) == ("unsupported", field)
