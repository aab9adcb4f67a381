"""VAE tiling per request: the policy, the switch on the real VAE, and the out-of-memory retry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handler import EndpointHandler
from pipelines.memory import HEADROOM, VaeTiling
from tests.conftest import SMALL
from tests.media import zip_frames
from video_endpoint import model_loading, settings
from video_endpoint.errors import ModelLoadError

REQUEST = {"inputs": {"prompt": "x", **SMALL, "num_frames": 9, "seed": 4, "outputs": ["zip"]}}
GIB = 2**30


@pytest.mark.parametrize(("value", "mode"), [("", "auto"), ("auto", "auto"), ("1", "on"), ("0", "off"),
                                             ("OFF", "off")])
def test_mode_from_environment(value, mode):
    assert settings.speed_settings(torch.device("cpu"), {"VIDEO_VAE_TILING": value}).vae_tiling == mode


def test_bad_environment_value_stops_start_up(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("VIDEO_VAE_TILING", "sometimes")
    with pytest.raises(ModelLoadError, match="VIDEO_VAE_TILING must be auto, 1 or 0"):
        model_loading.load_model(tiny_model_dir)


def test_auto_tiles_what_would_not_fit_at_the_measured_rate():
    policy = VaeTiling()
    assert policy.decide(10**9, free_bytes=None) is False  # CPU: never
    assert policy.decide(10**9, free_bytes=GIB) is False  # nothing measured yet: try untiled
    policy.measured(pixel_frames=1000, decode_bytes=100_000)  # 100 bytes per pixel-frame
    fits = int(HEADROOM * 40 * GIB / 100)
    assert policy.decide(fits, free_bytes=40 * GIB) is False
    assert policy.decide(fits + 1, free_bytes=40 * GIB) is True
    policy.measured(pixel_frames=1000, decode_bytes=50_000)  # a cheaper decode does not lower the rate
    assert policy.bytes_per_pixel_frame == 100


def test_a_size_that_ran_out_is_tiled_from_then_on():
    policy = VaeTiling()
    policy.did_not_fit(pixel_frames=121 * 512 * 768, free_bytes=20 * GIB)
    assert policy.decide(121 * 512 * 768, free_bytes=20 * GIB) is True
    assert policy.decide(33 * 512 * 512, free_bytes=20 * GIB) is False


@pytest.mark.parametrize(("mode", "expected"), [("on", True), ("off", False)])
def test_fixed_modes(mode, expected):
    assert VaeTiling(mode=mode).decide(1, free_bytes=None) is expected
    assert VaeTiling(mode=mode).decide(10**12, free_bytes=1) is expected


@pytest.fixture
def small_tiles(handler):
    """The tiny VAE's tiles (64 pixels, 2 latents) shrunk below the request's 96 pixel width, so
    tiling really splits the frames."""
    vae = handler.model.pipelines.t2v.vae
    saved = {name: getattr(vae, name) for name in ("tile_sample_min_height", "tile_sample_min_width",
                                                   "tile_sample_stride_height", "tile_sample_stride_width")}
    vae.tile_sample_min_height = vae.tile_sample_min_width = 64
    vae.tile_sample_stride_height = vae.tile_sample_stride_width = 32
    yield vae
    for name, value in saved.items():
        setattr(vae, name, value)
    handler.model.vae_tiling = VaeTiling()


def test_tiled_decode_runs_on_the_real_vae(handler, small_tiles):
    untiled = handler(REQUEST)
    assert untiled["diagnostics"]["vae_tiling"] is False and small_tiles.use_tiling is False
    handler.model.vae_tiling = VaeTiling(mode="on")
    tiled, again = handler(REQUEST), handler(REQUEST)
    assert tiled["diagnostics"]["vae_tiling"] is True and small_tiles.use_tiling is True
    assert zip_frames(tiled).shape == zip_frames(untiled).shape == (9, 64, 96, 3)
    np.testing.assert_array_equal(zip_frames(tiled), zip_frames(again))
    assert not np.array_equal(zip_frames(tiled), zip_frames(untiled))  # the tiles really were used


def test_running_out_of_memory_in_the_decode_retries_in_tiles(handler, small_tiles, monkeypatch):
    decode = small_tiles.decode

    def decode_that_needs_tiles(*args, **kwargs):
        if not small_tiles.use_tiling:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 30.00 GiB")
        return decode(*args, **kwargs)

    monkeypatch.setattr(small_tiles, "decode", decode_that_needs_tiles)
    steps: list[int] = []
    result = handler(REQUEST, on_step=lambda done, total: steps.append(done))
    assert result["ok"] is True and result["diagnostics"]["vae_tiling"] is True
    assert zip_frames(result).shape == (9, 64, 96, 3)
    assert any("decoded in tiles" in note for note in result["diagnostics"]["adjusted"])
    assert steps == [1, 2, 1, 2]  # generated again: progress starts over


def test_out_of_memory_while_denoising_is_not_retried(handler):
    def out_of_memory(done, total):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    result = handler(REQUEST, on_step=out_of_memory)
    assert result["error"]["type"] == "out_of_memory" and "generating 9 frames" in result["error"]["message"]


def test_cpu_never_tiles_by_default(tiny_model_dir):
    handler = EndpointHandler(str(tiny_model_dir))
    assert handler.model.vae_tiling.mode == "auto"
    assert handler(REQUEST)["diagnostics"]["vae_tiling"] is False
