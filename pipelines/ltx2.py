"""LTX-2 (Lightricks): video with a synchronized soundtrack, `LTX2Pipeline` and
`LTX2ImageToVideoPipeline` on one set of weights (`from_pipe`).

Frame counts are 8k+1 and sizes multiples of 32 (the video VAE's ratios; the pipeline silently
rounds other values down, so the handler asks for valid ones). The request maps onto the model:
`fps` is the frame rate the model is conditioned on (the soundtrack is generated for
num_frames / fps seconds); `guidance_scale` is classifier-free guidance for video and audio alike.
Spatio-temporal guidance and modality guidance are off (`stg_scale` 0, `modality_scale` 1) and
`use_cross_timestep` false: one batched pass per step, diffusers 0.39's behaviour, passed
explicitly because later diffusers versions change these defaults. The prompt enhancer (which
needs a large language model and a `processor`) is never used.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import LTX2ImageToVideoPipeline, LTX2Pipeline

from pipelines.base import (
    FrameCount,
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    VideoWithAudio,
    call_pipeline,
    causal_vae_frames,
    check_size_multiple,
    load_both_modes,
)

FAMILY = "ltx-2"
CLASS_NAMES = ("LTX2Pipeline", "LTX2ImageToVideoPipeline")
AUDIO = True
_DECODE_TIMESTEP, _DECODE_NOISE_SCALE = 0.05, 0.025  # for a VAE that conditions decoding on a timestep


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    return load_both_modes(LTX2Pipeline, LTX2ImageToVideoPipeline, source, class_name, device, dtype)


def frame_count(pipelines: LoadedPipelines, requested: int) -> FrameCount:
    # the LTX pipelines name the VAE's temporal compression differently from the others
    return causal_vae_frames(requested, pipelines.any.vae_temporal_compression_ratio)


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    check_size_multiple(job, pipelines.any.vae_spatial_compression_ratio, "LTX-2")
    return []


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> VideoWithAudio:
    pipe = pipelines.for_job(job)
    extra: dict[str, Any] = {
        "frame_rate": float(job.fps), "audio_guidance_scale": job.guidance_scale,
        "stg_scale": 0.0, "modality_scale": 1.0, "audio_stg_scale": 0.0, "audio_modality_scale": 1.0,
        "use_cross_timestep": False}
    if pipe.vae.config.get("timestep_conditioning"):
        extra.update(decode_timestep=_DECODE_TIMESTEP, decode_noise_scale=_DECODE_NOISE_SCALE)
    output = call_pipeline(pipe, job, on_step, **extra)
    return VideoWithAudio(video=output.frames, audio=output.audio[0],
                          sample_rate=int(pipe.vocoder.config.output_sampling_rate))
