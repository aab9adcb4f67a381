"""LTX-2.5 (the LTX-2 family with a Gemma 4 text encoder and a duration head) on its tiny
random-weight checkpoint, through the handler, against diffusers' own pipeline on the same weights.
Its classes need diffusers >= 0.40 and transformers 5: these run on the current generation; on the
toolkit one, start-up stops in one line (test_registry.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipelines import ltx2, registry, tiny
from tests.conftest import jpeg_base64
from tests.media import decode_audio, decode_video, output, pipeline_frames, zip_frames
from tests.pipelines.family_checks import check_enhancement, check_one_lora

pytestmark = pytest.mark.skipif(not tiny.buildable("tiny-ltx25"),
                                reason="LTX-2.5 needs diffusers >= 0.40 and transformers 5 (the current generation)")

SMALL = {"prompt": "a drum solo in a small room", "height": 64, "width": 96, "num_frames": 10, "fps": 24,
         "num_inference_steps": 2, "seed": 5}


@pytest.fixture(scope="module")
def handler(family_handlers):
    return family_handlers("tiny-ltx25")


def test_an_ltx2_checkpoint_with_options_and_what_it_needs(tiny_models, handler, family_handlers):
    index = json.loads((tiny_models("tiny-ltx25") / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "Gemma4UnifiedForConditionalGeneration"]
    assert index["duration_head"][1] == "LTX2DurationHead"
    assert registry.family_for(str(tiny_models("tiny-ltx25")), "test") == (ltx2, "LTX2Pipeline")
    assert ltx2.needs(index) == {"diffusers": "0.40", "transformers": "5.0"}
    assert ltx2.needs(json.loads((tiny_models("tiny-ltx2") / "model_index.json").read_text())) == {}
    assert handler.model.modes == ["t2v", "i2v"]
    assert handler.model.pipelines.i2v.transformer is handler.model.pipelines.t2v.transformer
    assert handler.model.describe()["auto_duration"] is True
    assert ltx2.is_ltx25(handler.model.pipelines.t2v)
    assert not ltx2.is_ltx25(family_handlers("tiny-ltx2").model.pipelines.t2v)


@pytest.mark.parametrize("mode", ["t2v", "i2v"])
def test_exact_frames_and_the_soundtrack(handler, mode):
    inputs = {**SMALL, "outputs": ["mp4", "zip"]}  # 10 is not 8k+1: 17 generated, 10 returned
    if mode == "i2v":
        inputs["image"] = jpeg_base64()
    result = handler({"inputs": inputs})
    assert result["ok"] is True, result
    frames = zip_frames(result)
    assert frames.shape == (10, 64, 96, 3) and result["diagnostics"]["generated_frames"] == 17
    assert result["diagnostics"]["mode"] == mode and result["diagnostics"]["num_frames"] == 10
    mp4 = output(result, "mp4")
    assert decode_video(mp4).frames.shape == (10, 64, 96, 3)
    audio = decode_audio(mp4)
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 48000, 2)  # LTX-2.5's rate
    assert abs(audio.seconds - 10 / 24) <= 1 / 24 and np.abs(audio.samples).max() > 1e-3
    if mode == "i2v":
        other = handler({"inputs": {**inputs, "image": jpeg_base64(width=48, height=80)}})
        assert not np.array_equal(zip_frames(other)[0], frames[0])


def _direct(handler, mode="t2v", **arguments) -> tuple[np.ndarray, np.ndarray]:
    """diffusers' LTX2Pipeline (or LTX2ImageToVideoPipeline) on the handler's weights, with the
    family's fixed arguments: LTX-2.5's cross-modality timestep among them."""
    pipe = getattr(handler.model.pipelines, mode)
    extra = {"use_cross_timestep": True}
    if pipe.vae.config.get("timestep_conditioning"):
        extra.update(decode_timestep=0.05, decode_noise_scale=0.025)
    result = pipe(prompt=SMALL["prompt"], negative_prompt="", height=64, width=96, frame_rate=24.0,
                  num_inference_steps=2, guidance_scale=7.5, audio_guidance_scale=7.5, stg_scale=0.0,
                  modality_scale=1.0, audio_stg_scale=0.0, audio_modality_scale=1.0,
                  output_type="pt", generator=torch.Generator("cpu").manual_seed(5), **{**extra, **arguments})
    return pipeline_frames(result.frames), result.audio[0].float().numpy()


def test_image_to_video_is_diffusers_own_with_the_cross_modality_timestep(handler):
    """With an image the video's timesteps differ token by token from the sound's: LTX-2.5 modulates
    each modality's cross-attention with the other's (`use_cross_timestep`), as it was trained."""
    from video_endpoint.image_input import decode_image
    from video_endpoint.request_schema import Limits

    jpeg = jpeg_base64()
    image = decode_image(jpeg, 96, 64, Limits())
    answer = handler({"inputs": {**SMALL, "num_frames": 17, "image": jpeg, "outputs": ["zip"]}})
    expected, _ = _direct(handler, "i2v", image=image, num_frames=17)
    np.testing.assert_array_equal(zip_frames(answer), expected)
    legacy, _ = _direct(handler, "i2v", image=image, num_frames=17, use_cross_timestep=False)
    assert not np.array_equal(legacy, expected)


def test_auto_duration_is_the_length_the_duration_head_predicts(handler):
    """At most `num_frames` frames: the pipeline is called without a frame count, its duration head's
    prediction bounded by num_frames / fps; the frames made are the answer's and diagnostics'."""
    inputs = {**SMALL, "num_frames": 49, "auto_duration": True, "outputs": ["mp4", "zip", "wav"]}
    result = handler({"inputs": inputs})
    assert result["ok"] is True, result
    expected, sound = _direct(handler, num_frames=None, max_seconds=49 / 24, min_seconds=1.0)
    made = expected.shape[0]
    assert made < 49 and (made - 1) % 8 == 0  # the head's choice (this one predicts 25), not the cap
    np.testing.assert_array_equal(zip_frames(result), expected)
    diagnostics = result["diagnostics"]
    assert diagnostics["num_frames"] == diagnostics["generated_frames"] == made
    assert diagnostics["audio"]["seconds"] == round(made / 24, 4)
    assert any(note.startswith("auto_duration: the model chooses the length, at most 49") for note in
               diagnostics["adjusted"])
    mp4 = output(result, "mp4")
    assert decode_video(mp4).frames.shape[0] == made
    assert abs(decode_audio(mp4).seconds - made / 24) <= 1 / 24
    wav = decode_audio(output(result, "wav"))
    assert (wav.sample_rate, wav.samples.shape[1]) == (48000, round(made / 24 * 48000))
    made_sound = min(sound.shape[1], wav.samples.shape[1])  # the model's sound, padded with silence to the frames
    np.testing.assert_allclose(wav.samples[:, :made_sound], np.clip(sound[:, :made_sound], -1, 1), atol=1.5 / 32768)
    assert not wav.samples[:, made_sound:].any()
    np.testing.assert_array_equal(zip_frames(handler({"inputs": inputs})), expected)  # deterministic
    # a lower cap bounds the prediction; without auto_duration the request's count stands
    short = handler({"inputs": {**inputs, "num_frames": 9}})
    assert short["ok"] is True and 1 <= short["diagnostics"]["num_frames"] <= 9
    fixed = handler({"inputs": {**inputs, "auto_duration": False}})
    assert fixed["diagnostics"]["num_frames"] == 49 and zip_frames(fixed).shape[0] == 49


def test_auto_duration_is_refused_where_the_model_cannot_choose(handler, family_handlers):
    plain = family_handlers("tiny-ltx2")
    assert plain.model.describe()["auto_duration"] is False
    refused = plain({"inputs": {**SMALL, "auto_duration": True}})
    assert (refused["ok"], refused["error"]["type"], refused["error"]["field"]) == (
        False, "unsupported", "auto_duration")
    pinned = handler({"inputs": {**SMALL, "auto_duration": True, "image": jpeg_base64(),
                                 "last_image": jpeg_base64(width=48, height=80)}})
    assert (pinned["ok"], pinned["error"]["field"]) == (False, "auto_duration")
    assert "last_image" in pinned["error"]["message"]
    assert handler({"inputs": {**SMALL, "num_inference_steps": 1, "outputs": ["gif"]}})["ok"] is True  # served on


def test_enhance_prompt_is_the_pipeline_s_own_enhancement(handler, family_handlers, caplog):
    """The dedicated Gemma 4 enhancer rewrites the prompt as diffusers' `enable_prompt_enhancement`
    does; the answer returns the rewritten prompt."""
    frames = check_enhancement(handler, {**SMALL, "num_frames": 9, "outputs": ["zip"]}, caplog)
    expected, _ = _direct(handler, num_frames=9, enable_prompt_enhancement=True)
    np.testing.assert_array_equal(frames, expected)
    assert family_handlers("tiny-ltx2").model.describe()["prompt_enhancer"] is False  # LTX-2.0: none


def test_lora_adapters_change_the_frames_and_leave_nothing_behind(tiny_models, tmp_path):
    check_one_lora(tiny_models("tiny-ltx25"), tmp_path / "ltx25", {**SMALL, "outputs": ["zip"]})
