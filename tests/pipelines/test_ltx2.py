"""LTX-2 on its tiny random-weight checkpoint, end to end through the handler: both modes from one
set of weights, exact frames, and the soundtrack in every format that carries one, decoded back."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import pytest

from pipelines import ltx2, registry
from tests.conftest import jpeg_base64
from tests.media import decode_audio, decode_video, zip_frames

SMALL = {"prompt": "a drum solo in a small room", "height": 64, "width": 96, "num_frames": 10, "fps": 24,
         "num_inference_steps": 2, "seed": 5}


@pytest.fixture(scope="module")
def handler(family_handlers):
    return family_handlers("tiny-ltx2")


def output(result: dict, name: str) -> bytes:
    assert result["ok"] is True, result
    return base64.b64decode(result["outputs"][f"{name}_base64"])


def test_detected_with_both_modes_from_one_set_of_weights(tiny_models, handler):
    directory = tiny_models("tiny-ltx2")
    assert json.loads((directory / "model_index.json").read_text())["_class_name"] == "LTX2Pipeline"
    assert registry.family_for(str(directory), "test") == (ltx2, "LTX2Pipeline")
    assert handler.model.modes == ["t2v", "i2v"]
    assert handler.model.pipelines.i2v.transformer is handler.model.pipelines.t2v.transformer


@pytest.mark.parametrize("mode", ["t2v", "i2v"])
def test_exact_frames_deterministic_and_the_image_matters(handler, mode):
    inputs = {**SMALL, "outputs": ["zip"]}  # 10 is not 8k+1: 17 are generated, 10 returned
    if mode == "i2v":
        inputs["image"] = jpeg_base64()
    first, again = handler({"inputs": inputs}), handler({"inputs": inputs})
    assert zip_frames(first).shape == (10, 64, 96, 3)
    np.testing.assert_array_equal(zip_frames(first), zip_frames(again))
    assert first["diagnostics"]["generated_frames"] == 17 and first["diagnostics"]["mode"] == mode
    if mode == "i2v":
        other = handler({"inputs": {**inputs, "image": jpeg_base64(width=48, height=80)}})
        assert not np.array_equal(zip_frames(other), zip_frames(first))


def test_the_soundtrack_comes_back_in_every_format_that_carries_one(handler):
    result = handler({"inputs": {**SMALL, "outputs": ["mp4", "webm", "wav", "zip", "gif"]}})
    seconds = 10 / 24
    assert result["diagnostics"]["audio"]["sample_rate"] == 24000
    assert result["diagnostics"]["audio"]["channels"] == 2 and result["diagnostics"]["audio"]["seconds"] == round(
        seconds, 4)
    # about the real model's length for 17 frames at 24 fps: (round(17 / 24 * 25) * 4 - 3) * 240 samples at 24 kHz
    expected = (round(17 / 24 * 25) * 4 - 3) * 240 / 24000
    assert result["diagnostics"]["audio"]["generated_seconds"] == pytest.approx(expected, abs=1e-3)
    for name, codec, rate in (("mp4", "aac", 24000), ("webm", "opus", 48000)):
        data = output(result, name)
        audio = decode_audio(data)
        assert (audio.codec, audio.sample_rate, audio.channels) == (codec, rate, 2)
        assert abs(audio.seconds - seconds) <= 1 / 24, (name, audio.seconds)
        assert decode_video(data).frames.shape == (10, 64, 96, 3)
        assert np.abs(audio.samples).max() > 1e-3  # sound, not silence
    wav = decode_audio(output(result, "wav"))
    assert (wav.codec, wav.sample_rate, wav.channels, wav.samples.shape[1]) == ("pcm_s16le", 24000, 2, 10000)
    with zipfile.ZipFile(io.BytesIO(output(result, "zip"))) as archive:
        in_zip = decode_audio(archive.read("audio.wav"))
        assert json.loads(archive.read("manifest.json"))["audio"]["seconds"] == pytest.approx(seconds)
    np.testing.assert_array_equal(in_zip.samples, wav.samples)  # the same soundtrack everywhere
    with pytest.raises(AssertionError, match="no audio stream"):
        decode_audio(output(result, "gif"))


def test_fps_is_the_frame_rate_the_model_is_conditioned_on(handler):
    """LTX-2 generates sound for num_frames / fps seconds: half the rate, twice the sound."""
    fast = handler({"inputs": {**SMALL, "outputs": ["wav"]}})["diagnostics"]["audio"]
    slow = handler({"inputs": {**SMALL, "fps": 12, "outputs": ["wav"]}})["diagnostics"]["audio"]
    assert slow["seconds"] == pytest.approx(2 * fast["seconds"], abs=1e-3)
    assert slow["generated_seconds"] == pytest.approx(2 * fast["generated_seconds"], abs=0.05)
    assert decode_audio(output(handler({"inputs": {**SMALL, "fps": 12, "outputs": ["wav"]}}), "wav")).samples.shape[
        1] == 20000


def test_sizes_must_suit_the_vae_and_wav_needs_a_model_with_sound(handler, family_handlers):
    refused = handler({"inputs": {**SMALL, "height": 48}})
    assert refused["ok"] is False and refused["error"]["field"] == "height"
    silent = family_handlers("tiny-wan")({"inputs": {**SMALL, "outputs": ["gif", "wav"]}})
    assert silent["ok"] is False and silent["error"]["type"] == "unsupported"
    assert silent["error"]["field"] == "outputs.wav" and "generates none" in silent["error"]["message"]
