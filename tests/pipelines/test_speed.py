"""The fast-path switches. What needs a GPU (compilation speed, offload) is marked `gpu` and
skipped on CPU; the switches themselves and the step cache run here."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from handler import EndpointHandler
from pipelines import speed
from tests.media import zip_frames

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
REQUEST = {"inputs": {"prompt": "a red balloon", "height": 64, "width": 96, "num_frames": 9,
                      "num_inference_steps": 8, "seed": 4, "outputs": ["zip"]}}


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.parametrize("step_cache", [None, "0.05"])
def test_after_warm_up_no_request_recompiles(tiny_model_dir, monkeypatch, step_cache):
    """Regional compilation runs on CPU too (inductor's C++ backend): after the warm-up requests,
    changing prompt, seed, steps, guidance (on or off: the batch doubles) or, from torch 2.11, the
    size recompiles nothing. A recompilation would raise inside the pipeline and answer ok: false.
    Before the attention processors were shared, torch 2.5 recompiled every block. With the step
    cache on, every request used to fail (its hook cannot be traced in one graph)."""
    monkeypatch.setenv("VIDEO_COMPILE", "1")
    if step_cache:
        monkeypatch.setenv("VIDEO_STEP_CACHE", step_cache)
    torch._dynamo.utils.counters.clear()
    handler = EndpointHandler(str(tiny_model_dir))
    if not step_cache:
        # one graph per warm-up shape at most, not one per block and shape (torch 2.5 without shared
        # attention processors: 8 for the tiny model's 2 blocks)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= len(speed.warmup_shapes(handler.model.modes))
    else:
        assert any("first-block cache" in item for item in handler.model.describe()["speed"])
    assert any("regional compilation" in item for item in handler.model.describe()["speed"])
    assert handler.warmup_ms > 0
    try:
        base = {"prompt": "a red balloon", "num_inference_steps": 3, "seed": 4, "outputs": ["zip"]}
        changes = [{}, {"prompt": "a much longer prompt about a red balloon over the sea"}, {"seed": 5},
                   {"num_inference_steps": 4}, {"guidance_scale": 1.0}, {"negative_prompt": "blurry"}]
        if not speed.sizes_compile_once_each():
            changes += [{"height": 256, "width": 256, "num_frames": 9},
                        {"height": 384, "width": 640, "num_frames": 25, "guidance_scale": 1.0}]
        # torch's own patcher: monkeypatch's undo deletes the option from torch's config module
        with torch._dynamo.config.patch(error_on_recompile=True):
            for change in changes:
                result = handler({"inputs": {**base, **change}})
                assert result["ok"] is True, (change, result)
    finally:
        torch._dynamo.reset()


def test_step_cache_is_applied_deterministic_and_changes_the_result(tiny_model_dir, handler, monkeypatch):
    monkeypatch.setenv("VIDEO_STEP_CACHE", "0.5")  # high: most steps reuse the cached residual
    cached = EndpointHandler(str(tiny_model_dir))
    assert any("first-block cache" in item for item in cached.model.describe()["speed"])
    first, again = zip_frames(cached(REQUEST)), zip_frames(cached(REQUEST))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, zip_frames(handler(REQUEST)))  # the uncached handler


def test_warm_up_runs_at_start(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("VIDEO_WARMUP", "1")
    warmed = EndpointHandler(str(tiny_model_dir))
    assert warmed.warmup_ms is not None and warmed.warmup_ms > 0
    assert warmed(REQUEST)["ok"] is True


def test_image_only_models_warm_up_with_an_image(handler):
    assert all(shape.with_image for shape in speed.warmup_shapes(["i2v"]))
    assert not any(shape.with_image for shape in speed.warmup_shapes(["t2v", "i2v"]))
    for shape in speed.warmup_shapes(["i2v"])[:2]:  # made into requests of ours and served
        warmed = handler._warm_up(shape)
        assert warmed["ok"] and warmed["diagnostics"]["mode"] == "i2v"
        assert warmed["diagnostics"]["num_inference_steps"] == speed.WARMUP_STEPS


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_first_request_is_not_slower_than_the_second(tiny_model_dir):
    handler = EndpointHandler(str(tiny_model_dir))  # compile + warm-up are the CUDA defaults
    assert any("regional compilation" in item for item in handler.model.describe()["speed"])
    first = handler({"inputs": {"prompt": "x", "num_inference_steps": 4, "seed": 1}})
    second = handler({"inputs": {"prompt": "y", "num_inference_steps": 4, "seed": 2}})
    assert first["diagnostics"]["timing_ms"]["generate"] < 1.5 * second["diagnostics"]["timing_ms"]["generate"]
