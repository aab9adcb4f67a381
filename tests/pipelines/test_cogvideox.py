"""CogVideoX on tiny random-weight checkpoints (2B-shaped text-to-video, 5B-I2V-shaped
image-to-video), end to end through the handler."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import cogvideox, registry
from tests.conftest import jpeg_base64
from tests.media import zip_frames

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
