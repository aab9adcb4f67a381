"""LTX-Video (Lightricks): `LTXPipeline` and `LTXImageToVideoPipeline`.

Both pipelines have exactly the same components, so image-to-video is derived from the loaded
text-to-video pipeline with `from_pipe` (no second copy of the weights), whichever of the two
classes the checkpoint names. Frame counts must be 8k+1 (the VAE's temporal compression ratio
is 8) and sizes multiples of 32 (its spatial ratio): the ratios are read from the loaded VAE.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    LTXImageToVideoPipeline,
    LTXPipeline,
)

from pipelines.base import (
    FrameCount,
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    causal_vae_frames,
    load_both_modes,
    run_pipeline,
)
from pipelines.errors import Refused

FAMILY = "ltx-video"
CLASS_NAMES = ("LTXPipeline", "LTXImageToVideoPipeline")
AUDIO = False
# Recommended by Lightricks for the VAEs that condition decoding on a timestep (0.9.1 and later).
_DECODE_TIMESTEP, _DECODE_NOISE_SCALE = 0.05, 0.025


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    """Load from a local diffusers directory or a Hub id (safetensors only, no remote code)."""
    return load_both_modes(LTXPipeline, LTXImageToVideoPipeline, source, class_name, device, dtype)


def frame_count(pipelines: LoadedPipelines, requested: int) -> FrameCount:
    # the LTX pipelines name the VAE's temporal compression differently from the others
    return causal_vae_frames(requested, pipelines.any.vae_temporal_compression_ratio)


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    """Family rules beyond the API's own. A scheduler that stretches its sigmas to a terminal
    value (`shift_terminal`, LTX-Video 0.9.1 and later) divides by zero with a single step."""
    if job.num_inference_steps < 2 and pipelines.any.scheduler.config.get("shift_terminal"):
        raise Refused("this model's scheduler needs at least 2 steps", field="num_inference_steps")
    return []


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    pipe = pipelines.for_job(job)
    extra: dict[str, Any] = {"frame_rate": job.fps}  # LTX scales its rotary position embedding in time by it
    if pipe.vae.config.get("timestep_conditioning"):
        extra.update(decode_timestep=_DECODE_TIMESTEP, decode_noise_scale=_DECODE_NOISE_SCALE)
    return run_pipeline(pipe, job, on_step, **extra)
