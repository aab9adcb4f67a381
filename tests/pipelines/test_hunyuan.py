"""HunyuanVideo on a tiny random-weight checkpoint, end to end through the handler."""

from __future__ import annotations

import json

import numpy as np
import pytest

from errors import ModelLoadError
from pipelines import hunyuan, registry
from tests.conftest import jpeg_base64
from tests.media import zip_frames

SMALL = {"height": 64, "width": 96, "num_inference_steps": 2, "seed": 9, "outputs": ["zip"]}




def test_text_to_video_exact_frames_and_determinism(tiny_models, family_handlers):
    assert registry.family_for(str(tiny_models("tiny-hunyuan")), "test") == (hunyuan, "HunyuanVideoPipeline")
    handler = family_handlers("tiny-hunyuan")
    assert handler.model.modes == ["t2v"]
    inputs = {"prompt": "a lighthouse at night", **SMALL, "num_frames": 14}  # 14 is not 4k+1: 17 generated
    first, again = handler({"inputs": inputs}), handler({"inputs": inputs})
    assert zip_frames(first).shape == (14, 64, 96, 3)
    np.testing.assert_array_equal(zip_frames(first), zip_frames(again))
    assert first["diagnostics"]["generated_frames"] == 17
    assert first["diagnostics"]["model"]["family"] == "hunyuanvideo"


def test_negative_prompt_is_reported_as_ignored(family_handlers):
    result = family_handlers("tiny-hunyuan")({"inputs": {"prompt": "x", **SMALL, "num_frames": 1,
                                                         "negative_prompt": "blurry"}})
    assert any("negative_prompt is ignored" in note for note in result["diagnostics"]["adjusted"])


def test_image_is_unsupported(family_handlers):
    result = family_handlers("tiny-hunyuan")({"inputs": {"prompt": "x", **SMALL, "num_frames": 1,
                                                         "image": jpeg_base64()}})
    assert (result["error"]["type"], result["error"]["field"]) == ("unsupported", "image")


def test_image_to_video_checkpoint_is_refused_at_start_naming_what_is_served(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanVideoImageToVideoPipeline"}))
    with pytest.raises(ModelLoadError, match=r"HunyuanVideoImageToVideoPipeline.*HunyuanVideoPipeline"):
        registry.load_model(tmp_path)
