"""LTX-Video (Lightricks): `LTXPipeline` and `LTXImageToVideoPipeline`.

Both pipelines have exactly the same components, so image-to-video is derived from the loaded
text-to-video pipeline with `from_pipe` (no second copy of the weights), whichever of the two
classes the checkpoint names. Frame counts must be 8k+1 (the VAE's temporal compression ratio
is 8) and sizes multiples of 32 (its spatial ratio): the ratios are read from the loaded VAE.

Conditioning beyond a first image runs `LTXConditionPipeline`, derived the same way: `image`,
`last_image`, `keyframes` and `extend` become its `LTXVideoCondition`s (an image at any frame,
the extended video's last 8k+1 frames at frame 0); `video` is video-to-video as diffusers does
it there: the video's latents noised to `strength` (`denoise_strength`) and denoised from there.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    LTXConditionPipeline,
    LTXImageToVideoPipeline,
    LTXPipeline,
)
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

from pipelines.base import (
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    derive,
    encode_video,
    load_both_modes,
    needs_nothing,
    no_duration_prediction,
    no_prompt_enhancer,
    no_request_defaults,
    run_pipeline,
    vae_frame_count,
)
from pipelines.errors import Refused

FAMILY = "ltx-video"
CLASS_NAMES = ("LTXPipeline", "LTXImageToVideoPipeline")
AUDIO = False
CONDITIONING = frozenset({"last_image", "keyframes", "video", "extend"})
# Recommended by Lightricks for the VAEs that condition decoding on a timestep (0.9.1 and later).
_DECODE_TIMESTEP, _DECODE_NOISE_SCALE = 0.05, 0.025


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    """Load from a local diffusers directory or a Hub id (safetensors only, no remote code)."""
    pipelines = load_both_modes(LTXPipeline, LTXImageToVideoPipeline, source, class_name, device, dtype)
    scheduler = pipelines.any.scheduler
    if scheduler.config.get("use_dynamic_shifting"):
        # LTXConditionPipeline sets its own timesteps without the `mu` a dynamically shifting
        # scheduler needs (it would raise): it gets a copy that does not shift by resolution
        scheduler = type(scheduler).from_config(scheduler.config, use_dynamic_shifting=False)
    pipelines.derived["condition"] = derive(LTXConditionPipeline, pipelines.any, dtype, scheduler=scheduler)
    return pipelines


frame_count = vae_frame_count


needs = needs_nothing
request_defaults = no_request_defaults
prompt_enhancer = no_prompt_enhancer
predicts_duration = no_duration_prediction


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    """Family rules beyond the API's own. A scheduler that stretches its sigmas to a terminal
    value (`shift_terminal`, LTX-Video 0.9.1 and later) divides by zero with a single step."""
    if job.num_inference_steps < 2 and pipelines.any.scheduler.config.get("shift_terminal"):
        raise Refused("this model's scheduler needs at least 2 steps", field="num_inference_steps")
    return []


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    pipe = pipelines.derived["condition"] if job.conditioning else pipelines.for_job(job)
    extra: dict[str, Any] = {"frame_rate": job.fps}  # LTX scales its rotary position embedding in time by it
    if pipe.vae.config.get("timestep_conditioning"):
        extra.update(decode_timestep=_DECODE_TIMESTEP, decode_noise_scale=_DECODE_NOISE_SCALE)
    if job.video:
        extra.update(image=None, latents=video_latents(pipe, job), denoise_strength=job.strength)
    elif job.conditioning:
        extra.update(image=None, conditions=conditions(job))
    return run_pipeline(pipe, job, on_step, **extra)


def conditions(job: GenerationJob) -> list[LTXVideoCondition]:
    """The job's images and context as `LTXConditionPipeline` takes them, at generated frames."""
    placed = [LTXVideoCondition(image=job.image, frame_index=0)] if job.image is not None else []
    if job.context:
        placed.append(LTXVideoCondition(video=list(job.context), frame_index=0))
    if job.last_image is not None:
        placed.append(LTXVideoCondition(image=job.last_image, frame_index=job.last_returned_frame))
    placed += [LTXVideoCondition(image=k.image, frame_index=k.frame, strength=k.strength) for k in job.keyframes]
    return placed


def video_latents(pipe: Any, job: GenerationJob) -> torch.Tensor:
    """The video to transform as the normalized latents `LTXConditionPipeline` starts from (the
    mean of the VAE's posterior: no noise of its own)."""
    return pipe._normalize_latents(encode_video(pipe, job), pipe.vae.latents_mean, pipe.vae.latents_std)
