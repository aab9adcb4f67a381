"""LTX-2 on its tiny random-weight checkpoint, end to end through the handler: both modes from one
set of weights, exact frames, and the soundtrack in every format that carries one, decoded back."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from pipelines import ltx2, registry
from tests.conftest import jpeg_base64
from tests.media import decode_audio, decode_video, output, pipeline_frames, zip_frames

SMALL = {"prompt": "a drum solo in a small room", "height": 64, "width": 96, "num_frames": 10, "fps": 24,
         "num_inference_steps": 2, "seed": 5}


@pytest.fixture(scope="module")
def handler(family_handlers):
    return family_handlers("tiny-ltx2")


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


def _direct(handler, num_frames: int, conditions) -> tuple[np.ndarray, np.ndarray]:
    """diffusers' LTX2ConditionPipeline on the handler's weights, with the family's fixed arguments."""
    import torch

    pipe = handler.model.pipelines.derived["condition"]
    extra = {}
    if pipe.vae.config.get("timestep_conditioning"):
        extra = {"decode_timestep": 0.05, "decode_noise_scale": 0.025}
    output = pipe(conditions=conditions, prompt=SMALL["prompt"], negative_prompt="", height=64, width=96,
                  num_frames=num_frames, frame_rate=24.0, num_inference_steps=2, guidance_scale=7.5,
                  audio_guidance_scale=7.5, stg_scale=0.0, modality_scale=1.0, audio_stg_scale=0.0,
                  audio_modality_scale=1.0, use_cross_timestep=False, output_type="pt",
                  generator=torch.Generator("cpu").manual_seed(5), **extra)
    return pipeline_frames(output.frames), output.audio[0].float().numpy()


def test_keyframes_by_latent_index_and_where_they_land(handler):
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    from video_endpoint.image_input import decode_image
    from video_endpoint.request_schema import Limits

    first, last = jpeg_base64(96, 64), jpeg_base64(64, 96)
    answer = handler({"inputs": {**SMALL, "num_frames": 17, "image": first, "last_image": last, "outputs": ["zip"]}})
    images = [decode_image(text, 96, 64, Limits()) for text in (first, last)]
    # 17 frames are 3 latent frames: an image shows at frame 0, 1 or 9, so the last frame (16) goes to 9
    expected, _ = _direct(handler, 17, [LTX2VideoCondition(frames=images[0], index=0),
                                        LTX2VideoCondition(frames=images[1], index=2)])
    np.testing.assert_array_equal(zip_frames(answer), expected)
    assert answer["diagnostics"]["mode"] == "flf2v"
    assert answer["diagnostics"]["adjusted"] == [
        "last_image asked at frame 16 is at frame 9: LTX-2 places images at frames 0 and 8k+1"]
    clash = handler({"inputs": {**SMALL, "num_frames": 17, "keyframes": [
        {"image": first, "frame": 9}, {"image": last, "frame": 12}]}})
    assert (clash["ok"], clash["error"]["field"]) == (False, "keyframes.1.frame")
    assert "both be at frame 9" in clash["error"]["message"]


def test_extend_returns_the_frames_and_the_sound_after_the_video(handler):
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    from tests.media import synthetic_clip, video_base64
    from video_endpoint.request_schema import Limits
    from video_endpoint.video_input import read_video

    clip = video_base64(synthetic_clip(30, 64, 96), 24)
    answer = handler({"inputs": {**SMALL, "num_frames": 9, "extend": clip, "outputs": ["zip", "wav"]}})
    context = read_video(clip, "extend", 96, 64, 24, Limits(), count=17, keep="last").frames
    frames, audio = _direct(handler, 33, [LTX2VideoCondition(frames=context, index=0)])
    np.testing.assert_array_equal(zip_frames(answer), frames[17:26])
    wav = decode_audio(output(answer, "wav"))
    skip = round(17 / 24 * 24000)  # the sound of frames 17 on: the context's own is cut
    n = wav.samples.shape[1]
    assert n == round(9 / 24 * 24000)
    np.testing.assert_allclose(wav.samples, np.clip(audio[:, skip:skip + n], -1, 1), atol=1.5 / 32768)


def test_video_to_video_runs_the_last_sigmas_from_the_video_s_latents(handler):
    import torch

    from tests.media import synthetic_clip, video_base64
    from video_endpoint.request_schema import Limits
    from video_endpoint.video_input import read_video

    clip = video_base64(synthetic_clip(20, 64, 96), 24)
    steps = []
    answer = handler({"inputs": {**SMALL, "num_frames": 9, "num_inference_steps": 4, "video": clip, "strength": 0.5,
                                 "outputs": ["zip"]}}, on_step=lambda done, total: steps.append((done, total)))
    pipe = handler.model.pipelines.derived["condition"]
    source = read_video(clip, "video", 96, 64, 24, Limits(), count=9).frames
    latents = pipe.vae.encode(pipe.video_processor.preprocess_video(source, 64, 96)).latent_dist.mode()
    extra = {"decode_timestep": 0.05, "decode_noise_scale": 0.025} if pipe.vae.config.get(
        "timestep_conditioning") else {}
    output = pipe(prompt=SMALL["prompt"], negative_prompt="", height=64, width=96, num_frames=9, frame_rate=24.0,
                  latents=latents, sigmas=[0.5, 0.25], num_inference_steps=2, guidance_scale=7.5,
                  audio_guidance_scale=7.5, stg_scale=0.0, modality_scale=1.0, audio_stg_scale=0.0,
                  audio_modality_scale=1.0, use_cross_timestep=False, output_type="pt",
                  generator=torch.Generator("cpu").manual_seed(5), **extra)
    np.testing.assert_array_equal(zip_frames(answer), pipeline_frames(output.frames))
    assert steps == [(1, 2), (2, 2)] and answer["diagnostics"]["mode"] == "v2v"
