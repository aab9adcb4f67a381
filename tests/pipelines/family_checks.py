"""Checks that several families' tests share: one LoRA adapter per request, and `enhance_prompt`
for the families with a prompt enhancer (Kandinsky 6, LTX-2.5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pipelines.tiny.loras import write_tiny_lora
from tests.conftest import jpeg_base64
from tests.media import zip_frames
from video_endpoint.endpoint import EndpointHandler


def check_one_lora(source: Path, directory: Path, inputs: dict, targets: tuple[str, ...] = ("to_q", "to_v")) -> None:
    """A copy of checkpoint `source` in `directory` with one adapter (`style`, rank 4 on `targets`):
    listed by the model, it changes the frames of `inputs` (a request for a ZIP), and the next
    request without it has the frames of one that never had it."""
    shutil.copytree(source, directory)
    write_tiny_lora(directory, "style", rank=4, targets=targets, seed=1)
    handler = EndpointHandler(str(directory))
    assert [adapter["name"] for adapter in handler.model.describe()["loras"]] == ["style"]
    baseline = zip_frames(handler({"inputs": inputs}))
    styled = zip_frames(handler({"inputs": {**inputs, "loras": [{"name": "style"}]}}))
    assert not np.array_equal(styled, baseline)
    np.testing.assert_array_equal(zip_frames(handler({"inputs": inputs})), baseline)


def check_enhancement(handler, inputs: dict, caplog) -> np.ndarray:
    """`inputs` (a text-to-video request for a ZIP) with `enhance_prompt`: the prompt rewritten and
    returned, the video the rewritten prompt makes, nothing logged, an image-to-video request refused
    by field. Returns the enhanced request's frames."""
    caplog.set_level("DEBUG")
    assert handler.model.describe()["prompt_enhancer"] is True
    enhanced = handler({"inputs": {**inputs, "enhance_prompt": True}})
    assert enhanced["ok"] is True, enhanced
    rewritten = enhanced["diagnostics"]["enhanced_prompt"]
    assert isinstance(rewritten, str) and rewritten and rewritten != inputs["prompt"]
    assert "generate.enhance_prompt" in enhanced["diagnostics"]["timing_ms"]
    frames = zip_frames(enhanced)
    # the video is the one the rewritten prompt makes: the same as sending it
    np.testing.assert_array_equal(zip_frames(handler({"inputs": {**inputs, "prompt": rewritten}})), frames)
    plain = handler({"inputs": inputs})
    assert "enhanced_prompt" not in plain["diagnostics"]
    assert not np.array_equal(zip_frames(plain), frames)
    assert rewritten not in caplog.text and inputs["prompt"] not in caplog.text  # never logged
    with_image = handler({"inputs": {**inputs, "enhance_prompt": True, "image": jpeg_base64()}})
    assert (with_image["ok"], with_image["error"]["type"], with_image["error"]["field"]) == (
        False, "unsupported", "enhance_prompt")
    return frames
