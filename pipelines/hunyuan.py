"""HunyuanVideo (Tencent): `HunyuanVideoPipeline` (text-to-video) and
`HunyuanVideoImageToVideoPipeline` (image-to-video), separate checkpoints.

Frame counts are 4k+1; sizes a multiple of 16 (VAE 8 x patch 2). What `guidance_scale` means
depends on the transformer:
- guidance-distilled transformers (`guidance_embeds`: HunyuanVideo, HunyuanVideo-I2V) are
  conditioned on it (the "embedded" guidance, 6.0 in Tencent's examples): one forward pass per
  step, and a negative prompt has no effect (diagnostics say so when one is sent);
- the others (HunyuanVideo-I2V-33ch) run true classifier-free guidance at `guidance_scale`
  against `negative_prompt` (two passes per step when it is > 1).
Image-to-video transformers take the image either as the first latent frame ("token_replace")
or as extra input channels ("latent_concat"); the latter decodes 4 frames fewer than it is
asked for, so it is asked for 4 more.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    HunyuanVideoImageToVideoPipeline,
    HunyuanVideoPipeline,
)
from transformers import (
    PreTrainedTokenizerFast,
)

from pipelines.base import (
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    check_size_multiple,
    load_one_mode,
    needs_nothing,
    no_duration_prediction,
    no_prompt_enhancer,
    no_request_defaults,
    run_pipeline,
    vae_frame_count,
)

FAMILY = "hunyuanvideo"
CLASS_NAMES = ("HunyuanVideoPipeline", "HunyuanVideoImageToVideoPipeline")
AUDIO = False
CONDITIONING: frozenset[str] = frozenset()  # last_image, keyframes, video, extend: none


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    # no from_pipe between the two: the I2V checkpoint has its own transformer and a LLaVA text encoder
    # The Llama 3 tokenizer is byte-level BPE filed as "LlamaTokenizerFast"; transformers 5's
    # LlamaTokenizer swaps its pre-tokenizer for SentencePiece's and drops every space of the prompt
    # (transformers#45488). The generic fast tokenizer reads tokenizer.json as it is, on 4.x and 5.x.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(source, subfolder="tokenizer")
    return load_one_mode(HunyuanVideoPipeline, HunyuanVideoImageToVideoPipeline, source, class_name, device, dtype,
                         tokenizer=tokenizer)


def _guidance_embedded(pipelines: LoadedPipelines) -> bool:
    return pipelines.any.transformer.config.guidance_embeds


needs = needs_nothing
request_defaults = no_request_defaults
prompt_enhancer = no_prompt_enhancer
predicts_duration = no_duration_prediction


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    pipe = pipelines.any
    check_size_multiple(job, pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size, "HunyuanVideo")
    if job.negative_prompt and _guidance_embedded(pipelines):
        return ["negative_prompt is ignored: this HunyuanVideo model is guidance-distilled (guidance_scale "
                "is its embedded guidance)"]
    return []


frame_count = vae_frame_count


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    pipe = pipelines.for_job(job)
    guidance: dict[str, Any]
    if _guidance_embedded(pipelines):
        # no negative prompt: with true_cfg_scale at 1 the pipeline would encode it for nothing
        guidance = dict(guidance_scale=job.guidance_scale, negative_prompt=None)
    else:
        # "" is a negative prompt too: true CFG needs one, and the card's default is ""
        guidance = dict(guidance_scale=1.0, true_cfg_scale=job.guidance_scale, negative_prompt=job.negative_prompt)
    num_frames = job.num_frames
    if job.image is not None and pipe.transformer.config.image_condition_type == "latent_concat":
        num_frames += pipe.vae_scale_factor_temporal  # the pipeline drops the image's 4 decoded frames
    return run_pipeline(pipe, job, on_step, num_frames=num_frames, **guidance)
