"""Kandinsky 6.0 (Kandinsky Lab): `Kandinsky6TI2VAPipeline`, video with a synchronized soundtrack from
one multimodal transformer, from text or from text and an image (one pipeline, one set of weights).
It is in diffusers from 0.42: the current library generation.

Frame counts are 4k+1 and sizes multiples of 16 (the HunyuanVideo VAE's ratios x patch 2; the
pipeline rounds other frame counts down). `fps` is the frame rate the model is conditioned on (the
sound is generated for the clip's length at it); the sound is mono at the audio VAE's sample rate
(44.1 kHz). Guidance is classifier-free above `guidance_scale` 1, for video and sound alike, against
the pipeline's own negative prompt when the request sends none.

The distilled checkpoints ship a `PiflowScheduler` (their transformer predicts a grid of values per
channel) and must run at guidance 1, 16 steps: those are the defaults of a request to one
(`request_defaults`), and a `guidance_scale` other than 1 is refused by field.

`enhance_prompt` rewrites the prompt with the pipeline's own `expand_prompts` (the Qwen2.5-VL text
encoder generating at most 1024 tokens, seeded by the request's seed) before generating; with an
image it would show the image to the encoder, which needs the processor's image half, so an
image-to-video request cannot have it (unsupported, by field).

An image needs a transformer trained with the image token type (`visual_token_type_num_embeddings`
>= 2); a checkpoint without it is text-to-video only. The tokenizer is loaded as Kandinsky 5's
(`pipelines/kandinsky5.py`): text only, no torchvision needed.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from pipelines.base import (
    GenerationJob,
    LoadedPipelines,
    PromptEnhancer,
    StepCallback,
    TextTokenizer,
    VideoWithAudio,
    call_pipeline,
    check_size_multiple,
    check_text_only_enhancement,
    load_pipeline,
    no_duration_prediction,
    vae_frame_count,
)
from pipelines.errors import Refused
from pipelines.kandinsky5 import pipeline_negative_prompt

FAMILY = "kandinsky-6"
CLASS_NAMES = ("Kandinsky6TI2VAPipeline",)
AUDIO = True
CONDITIONING: frozenset[str] = frozenset()  # last_image, keyframes, video, extend: none
DISTILLED_STEPS = 16
"""what the distilled checkpoints are trained to sample in"""
ENHANCED_PROMPT_TOKENS = 1024
"""the most tokens the prompt enhancer writes (the pipeline's own bound)"""


def needs(model_index: dict[str, Any]) -> dict[str, str]:
    return {"diffusers": "0.42"}


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    # not in the toolkit generation's diffusers (NEEDS stops start-up there first): looked up when loading
    pipeline_class = importlib.import_module("diffusers").Kandinsky6TI2VAPipeline
    pipe = load_pipeline(pipeline_class, source, device, dtype, tokenizer=TextTokenizer.load(source, "tokenizer"))
    config = pipe.transformer.config
    animates_images = config.visual_cond and config.visual_token_type_num_embeddings >= 2
    return LoadedPipelines(t2v=pipe, i2v=pipe if animates_images else None, class_name=class_name)


frame_count = vae_frame_count
predicts_duration = no_duration_prediction


def distilled(pipelines: LoadedPipelines) -> bool:
    return type(pipelines.any.scheduler).__name__ == "PiflowScheduler"


def request_defaults(pipelines: LoadedPipelines) -> dict[str, Any]:
    if distilled(pipelines):
        return {"guidance_scale": 1.0, "num_inference_steps": DISTILLED_STEPS}
    return {}


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    pipe = pipelines.any
    check_size_multiple(job, pipe.vae_scale_factor_spatial * max(pipe.transformer_patch_size[1:]), "Kandinsky 6")
    if distilled(pipelines) and job.guidance_scale != 1:
        raise Refused("this distilled Kandinsky 6 checkpoint (PiflowScheduler) samples without guidance: send "
                      "guidance_scale 1 or leave it out", field="guidance_scale")
    check_text_only_enhancement(job, "Qwen2.5-VL")
    return []


def prompt_enhancer(pipelines: LoadedPipelines) -> PromptEnhancer | None:
    pipe = pipelines.any

    def enhance(job: GenerationJob) -> str:
        return str(type(pipe).expand_prompts(job.prompt, pipe.tokenizer, pipe.text_encoder, pipe._execution_device,
                                             max_sequence_length=ENHANCED_PROMPT_TOKENS,
                                             generator=torch.Generator("cpu").manual_seed(job.seed)))

    return enhance


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> VideoWithAudio:
    pipe = pipelines.for_job(job)
    output = call_pipeline(pipe, job, on_step, frame_rate=float(job.fps), sample_audio=True,
                           negative_prompt=pipeline_negative_prompt(job))
    return VideoWithAudio(video=output.frames, audio=output.audio[0][None], sample_rate=pipe.audio_sample_rate)
