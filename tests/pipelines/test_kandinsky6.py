"""Kandinsky 6.0 (video with sound from one transformer; text or image to video) on its tiny
random-weight checkpoints, base and distilled, through the handler, against diffusers' own pipeline
on the same weights. Its classes are in diffusers from 0.42: these run on the current generation;
on the toolkit one, start-up stops in one line (test_registry.py)."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from pipelines import kandinsky6, registry, tiny
from tests.conftest import jpeg_base64
from tests.media import decode_audio, decode_video, output, pipeline_frames, zip_frames
from tests.pipelines.family_checks import check_enhancement, check_one_lora

pytestmark = pytest.mark.skipif(not tiny.buildable("tiny-kandinsky6"),
                                reason="Kandinsky 6 needs diffusers >= 0.42 (the current library generation)")

SMALL = {"prompt": "a drum solo in a small room", "height": 32, "width": 64, "num_frames": 9, "fps": 12,
         "num_inference_steps": 2, "guidance_scale": 4.0, "seed": 5}


@pytest.fixture(scope="module")
def handler(family_handlers):
    return family_handlers("tiny-kandinsky6")


def test_detected_with_both_modes_on_one_pipeline(tiny_models, handler):
    directory = tiny_models("tiny-kandinsky6")
    assert json.loads((directory / "model_index.json").read_text())["tokenizer"] == [
        "transformers", "Qwen2_5_VLProcessor"]
    assert registry.family_for(str(directory), "test") == (kandinsky6, "Kandinsky6TI2VAPipeline")
    assert handler.model.modes == ["t2v", "i2v"] and handler.model.pipelines.i2v is handler.model.pipelines.t2v


@pytest.mark.parametrize("mode", ["t2v", "i2v"])
def test_frames_and_sound_are_diffusers_own(handler, mode):
    inputs = {**SMALL, "num_frames": 7, "outputs": ["zip", "wav"]}  # 7 is not 4k+1: 9 generated, 7 returned
    jpeg = jpeg_base64(width=64, height=32)
    if mode == "i2v":
        inputs["image"] = jpeg
    result = handler({"inputs": inputs})
    frames = zip_frames(result)
    assert frames.shape == (7, 32, 64, 3) and result["diagnostics"]["generated_frames"] == 9
    assert result["diagnostics"]["mode"] == mode
    from PIL import Image

    pipe = handler.model.pipelines.t2v
    reference = pipe(prompt=SMALL["prompt"], image=Image.open(io.BytesIO(base64.b64decode(jpeg))).convert("RGB")
                     if mode == "i2v" else None, height=32, width=64, num_frames=9, frame_rate=12.0,
                     num_inference_steps=2, guidance_scale=4.0, output_type="pt",
                     generator=torch.Generator("cpu").manual_seed(SMALL["seed"]))
    np.testing.assert_allclose(frames.astype(int), pipeline_frames(reference.frames)[:7].astype(int), atol=1)
    wav = decode_audio(output(result, "wav"))
    assert (wav.sample_rate, wav.channels) == (44100, 1)
    assert wav.samples.shape[1] == round(7 / 12 * 44100)  # cut to the returned frames
    expected = reference.audio[0].numpy()[: wav.samples.shape[1]]
    np.testing.assert_allclose(wav.samples[0], expected, atol=2 / 32768)  # 16-bit PCM
    if mode == "i2v":
        other = handler({"inputs": {**inputs, "image": jpeg_base64(width=48, height=80)}})
        assert not np.array_equal(zip_frames(other)[0], frames[0])


def test_the_soundtrack_comes_back_in_every_format_that_carries_one(handler):
    result = handler({"inputs": {**SMALL, "outputs": ["mp4", "webm", "zip", "gif"]}})
    seconds = 9 / 12
    assert result["diagnostics"]["audio"]["sample_rate"] == 44100 and result["diagnostics"]["audio"]["channels"] == 1
    for name in ("mp4", "webm"):
        data = output(result, name)
        audio = decode_audio(data)
        assert abs(audio.seconds - seconds) <= 1 / 12, (name, audio.seconds)
        assert decode_video(data).frames.shape == (9, 32, 64, 3)
        assert np.abs(audio.samples).max() > 1e-3  # sound, not silence
    with zipfile.ZipFile(io.BytesIO(output(result, "zip"))) as archive:
        assert decode_audio(archive.read("audio.wav")).samples.shape == (1, round(seconds * 44100))
    with pytest.raises(AssertionError, match="no audio stream"):
        decode_audio(output(result, "gif"))


def test_fps_sets_the_length_of_the_sound_the_model_makes(handler):
    fast = handler({"inputs": {**SMALL, "outputs": ["wav"]}})["diagnostics"]["audio"]
    slow = handler({"inputs": {**SMALL, "fps": 6, "outputs": ["wav"]}})["diagnostics"]["audio"]
    assert slow["seconds"] == pytest.approx(2 * fast["seconds"], abs=1e-3)
    assert slow["generated_seconds"] == pytest.approx(2 * fast["generated_seconds"], abs=0.05)


def test_the_pipeline_s_negative_prompt_when_none_is_sent(handler):
    def frames(**change):
        return zip_frames(handler({"inputs": {**SMALL, "outputs": ["zip"], **change}}))

    own = type(handler.model.pipelines.t2v)._DEFAULT_NEGATIVE_PROMPT
    np.testing.assert_array_equal(frames(), frames(negative_prompt=own))
    assert not np.array_equal(frames(), frames(negative_prompt="blurry"))


def test_a_distilled_checkpoint_samples_at_guidance_1_and_16_steps(family_handlers):
    handler = family_handlers("tiny-kandinsky6-distilled")
    base = {key: value for key, value in SMALL.items() if key not in ("guidance_scale", "num_inference_steps")}
    steps: list[tuple[int, int]] = []
    result = handler({"inputs": {**base, "outputs": ["zip"]}}, on_step=lambda done, total: steps.append((done, total)))
    assert result["ok"] is True, result
    assert steps[-1] == (16, 16) and len(steps) == 16
    diagnostics = result["diagnostics"]
    assert (diagnostics["guidance_scale"], diagnostics["num_inference_steps"]) == (1.0, 16)
    assert sum("this checkpoint's own" in note for note in diagnostics["adjusted"]) == 2
    asked = []
    sent = handler({"inputs": {**base, "guidance_scale": 1.0, "num_inference_steps": 2, "outputs": ["zip"]}},
                   on_step=lambda done, total: asked.append((done, total)))
    assert sent["ok"] is True and asked == [(1, 2), (2, 2)]
    refused = handler({"inputs": {**base, "guidance_scale": 5.0}})
    assert refused["ok"] is False and refused["error"]["field"] == "guidance_scale"
    assert "distilled" in refused["error"]["message"]
    assert handler({"inputs": {**base, "num_inference_steps": 1, "outputs": ["gif"]}})["ok"] is True  # served on
    # the base checkpoint keeps the schema's defaults
    plain = family_handlers("tiny-kandinsky6")({"inputs": {**base, "num_inference_steps": 1, "outputs": ["gif"]}})
    assert plain["diagnostics"]["guidance_scale"] == 7.5


def test_enhance_prompt_rewrites_the_prompt_with_the_model_s_own_enhancer(handler, caplog):
    check_enhancement(handler, {**SMALL, "num_inference_steps": 1, "outputs": ["zip"]}, caplog)


def test_lora_adapters_change_the_frames_and_leave_nothing_behind(tiny_models, tmp_path):
    check_one_lora(tiny_models("tiny-kandinsky6"), tmp_path / "kandinsky6", {**SMALL, "outputs": ["zip"]},
                   targets=("to_query", "to_value"))
