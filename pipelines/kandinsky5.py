"""Kandinsky 5.0 (Kandinsky Lab): `Kandinsky5T2VPipeline` (text-to-video) and `Kandinsky5I2VPipeline`
(image-to-video), separate checkpoints trained apart, so each serves its own mode.

Frame counts are 4k+1 (the HunyuanVideo VAE's temporal ratio; the pipelines round other counts
down), and an image-to-video clip is at least 17 frames: its pipeline renormalizes the first 4 latent
frames against the ones after them, which are missing below 5 latent frames (the frames come out
NaN), so shorter requests are generated at 17 and cut. Sizes are multiples of 16 (VAE 8 x patch 2).
Guidance is classifier-free when `guidance_scale` > 1 (the pipelines' own default negative prompt
when the request sends none); the "nocfg" and "distilled16steps" checkpoints are trained for
guidance 1.

The checkpoints' `tokenizer` is a `Qwen2VLProcessor`, of which the pipelines use the text tokenizer
alone (`images=None, videos=None`); its video processor needs torchvision. The tokenizer is loaded
by itself and given the processor's call, so a server without torchvision serves these models too.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import Kandinsky5I2VPipeline, Kandinsky5T2VPipeline

from pipelines.base import (
    OMIT,
    FrameCount,
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    TextTokenizer,
    causal_vae_frames,
    check_size_multiple,
    load_one_mode,
    needs_nothing,
    no_duration_prediction,
    no_prompt_enhancer,
    no_request_defaults,
    run_pipeline,
)

FAMILY = "kandinsky-5"
CLASS_NAMES = ("Kandinsky5T2VPipeline", "Kandinsky5I2VPipeline")
AUDIO = False
CONDITIONING: frozenset[str] = frozenset()  # last_image, keyframes, video, extend: none
I2V_MIN_FRAMES = 17
"""5 latent frames: the fewest the image-to-video pipeline's first-frame renormalization can use"""


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    return load_one_mode(Kandinsky5T2VPipeline, Kandinsky5I2VPipeline, source, class_name, device, dtype,
                         tokenizer=TextTokenizer.load(source, "tokenizer"))


def frame_count(pipelines: LoadedPipelines, requested: int) -> FrameCount:
    ratio = int(pipelines.any.vae_scale_factor_temporal)
    counted = causal_vae_frames(requested, ratio)
    if pipelines.i2v is None:
        return counted
    return FrameCount(max(counted.generated, I2V_MIN_FRAMES), f"{counted.rule}, at least {I2V_MIN_FRAMES}")


needs = needs_nothing  # in diffusers since 0.36: both library generations
request_defaults = no_request_defaults
prompt_enhancer = no_prompt_enhancer
predicts_duration = no_duration_prediction


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    pipe = pipelines.any
    check_size_multiple(job, pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1], "Kandinsky 5")
    return []


def pipeline_negative_prompt(job: GenerationJob) -> Any:
    """The request's negative prompt; none sent leaves the pipeline's own (what Kandinsky 5 and 6 were
    tuned with)."""
    return job.negative_prompt or OMIT


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    return run_pipeline(pipelines.for_job(job), job, on_step, negative_prompt=pipeline_negative_prompt(job))
