"""LTX-Video's conditioning (last_image, keyframes, video, extend) through the handler: the frames
equal what diffusers' `LTXConditionPipeline` makes for the same conditions and seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTXConditionPipeline
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

from tests.conftest import jpeg_base64
from tests.media import pipeline_frames, synthetic_clip, video_base64, zip_frames
from video_endpoint.image_input import decode_image
from video_endpoint.request_schema import Limits
from video_endpoint.video_input import read_video

SMALL = {"prompt": "a lighthouse", "height": 64, "width": 96, "num_inference_steps": 2, "seed": 7, "fps": 12,
         "outputs": ["zip"]}
FIRST, LAST, MIDDLE = jpeg_base64(96, 64), jpeg_base64(64, 96), jpeg_base64(80, 80)
CLIP = video_base64(synthetic_clip(36, 64, 96, seed=2), 12)


@pytest.fixture(scope="module")
def reference(handler):
    """diffusers' own condition pipeline on the handler's weights, called directly."""
    t2v = handler.model.pipelines.t2v
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(t2v.scheduler.config, use_dynamic_shifting=False)
    pipe = LTXConditionPipeline.from_pipe(t2v, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)

    def frames(num_frames: int, num_inference_steps: int = 2, **arguments) -> np.ndarray:
        extra = {}
        if pipe.vae.config.get("timestep_conditioning"):
            extra = {"decode_timestep": 0.05, "decode_noise_scale": 0.025}
        video = pipe(prompt=SMALL["prompt"], negative_prompt="", height=64, width=96, num_frames=num_frames,
                     num_inference_steps=num_inference_steps, guidance_scale=7.5, frame_rate=12, output_type="pt",
                     generator=torch.Generator("cpu").manual_seed(7), **extra, **arguments).frames
        return pipeline_frames(video)

    return frames


def image(text: str):
    return decode_image(text, 96, 64, Limits())


def test_first_and_last_frame(handler, reference):
    answer = handler({"inputs": {**SMALL, "num_frames": 17, "image": FIRST, "last_image": LAST}})
    expected = reference(17, conditions=[LTXVideoCondition(image=image(FIRST), frame_index=0),
                                         LTXVideoCondition(image=image(LAST), frame_index=16)])
    np.testing.assert_array_equal(zip_frames(answer), expected)
    assert answer["diagnostics"]["mode"] == "flf2v"
    assert answer["diagnostics"]["conditioning"] == {"last_image": {"frame": 16}}


def test_keyframes_land_on_the_frames_the_client_named(handler, reference):
    # 12 frames asked, 17 generated: the last image is frame 11 of the answer, not 16 of the generation
    answer = handler({"inputs": {**SMALL, "num_frames": 12, "last_image": LAST,
                                 "keyframes": [{"image": MIDDLE, "frame": 5, "strength": 0.8}]}})
    expected = reference(17, conditions=[LTXVideoCondition(image=image(LAST), frame_index=11),
                                         LTXVideoCondition(image=image(MIDDLE), frame_index=5, strength=0.8)])
    np.testing.assert_array_equal(zip_frames(answer), expected[:12])
    assert answer["diagnostics"]["mode"] == "keyframes"
    assert answer["diagnostics"]["conditioning"] == {"last_image": {"frame": 11},
                                                     "keyframes": [{"frame": 5, "strength": 0.8}]}
    plain = handler({"inputs": {**SMALL, "num_frames": 12}})
    assert not np.array_equal(zip_frames(plain), zip_frames(answer))


def test_extend_continues_after_the_last_frame_of_the_video(handler, reference):
    answer = handler({"inputs": {**SMALL, "num_frames": 8, "extend": CLIP}})
    context = read_video(CLIP, "extend", 96, 64, 12, Limits(), count=17, keep="last").frames
    expected = reference(25, conditions=[LTXVideoCondition(video=context, frame_index=0)])
    frames = zip_frames(answer)
    assert frames.shape[0] == 8
    np.testing.assert_array_equal(frames, expected[17:25])
    used = answer["diagnostics"]["conditioning"]["extend"]
    assert (used["frames_used"], used["continues_after_frame"], used["container"]) == (17, 16, "MP4")
    assert answer["diagnostics"]["mode"] == "extend" and answer["diagnostics"]["generated_frames"] == 25


def test_video_to_video_starts_from_the_video_s_latents(handler, reference):
    steps = []
    request = {"inputs": {**SMALL, "num_frames": 9, "num_inference_steps": 4, "video": CLIP, "strength": 0.5}}
    answer = handler(request, on_step=lambda done, total: steps.append((done, total)))
    pipe = handler.model.pipelines.derived["condition"]
    source = read_video(CLIP, "video", 96, 64, 12, Limits(), count=9).frames
    pixels = pipe.video_processor.preprocess_video(source, 64, 96)
    latents = pipe._normalize_latents(pipe.vae.encode(pixels).latent_dist.mode(), pipe.vae.latents_mean,
                                      pipe.vae.latents_std)
    reference_frames = reference(9, latents=latents, denoise_strength=0.5, num_inference_steps=4)
    np.testing.assert_array_equal(zip_frames(answer), reference_frames)
    assert steps == [(1, 2), (2, 2)]  # half the steps of 4, as the strength asks
    assert answer["diagnostics"]["mode"] == "v2v"
    assert answer["diagnostics"]["conditioning"]["video"]["strength"] == 0.5
    # the default strength, stated in the schema, is used when none is given
    default = handler({"inputs": {**SMALL, "num_frames": 9, "video": CLIP}})
    assert default["diagnostics"]["conditioning"]["video"]["strength"] == 0.6


def test_a_video_shorter_than_asked_is_refused_by_field(handler):
    short = video_base64(synthetic_clip(6, 64, 96), 12)
    answer = handler({"inputs": {**SMALL, "num_frames": 9, "video": short}})
    assert answer["ok"] is False and answer["error"]["field"] == "video" and "6 frames" in answer["error"]["message"]
