"""LTX-2 and LTX-2.5 (Lightricks): video with a synchronized soundtrack, `LTX2Pipeline` and
`LTX2ImageToVideoPipeline` on one set of weights (`from_pipe`).

LTX-2.5 checkpoints are this family with options, told apart by `model_index.json`: a Gemma 4 text
encoder (transformers 5, so the current library generation; `needs` stops start-up on the toolkit
one), a duration head that predicts the clip's natural length (`auto_duration`: the pipeline is
called without `num_frames`, its predicted length capped at the request's `num_frames / fps`), a
dedicated prompt enhancer (`enhance_prompt`, text-to-video: its Gemma 4 processor is loaded as its
tokenizer alone, the video half needing torchvision) and a vocoder that extends the sound to 48 kHz.

Frame counts are 8k+1 and sizes multiples of 32 (the video VAE's ratios; the pipeline silently
rounds other values down, so the handler asks for valid ones). The request maps onto the model:
`fps` is the frame rate the model is conditioned on (the soundtrack is generated for
num_frames / fps seconds); `guidance_scale` is classifier-free guidance for video and audio alike.
Spatio-temporal guidance and modality guidance are off (`stg_scale` 0, `modality_scale` 1): one
batched pass per step, passed explicitly because later diffusers versions change these defaults;
`use_cross_timestep` is what each generation is trained with (LTX-2.0 without, LTX-2.5 with).
LTX-2.0's text encoder, which could double as an enhancer with a caller's system prompt, is not
used as one.

Conditioning (`last_image`, `keyframes`, `video`, `extend`) runs `LTX2ConditionPipeline` on the
same weights. It places an image by *latent* index, so an image can only be at frame 0 or 8k+1; an
image asked elsewhere goes to the nearest such frame, and `adjusted` says where. Video-to-video
starts from the video's latents and the last `strength` of the schedule's sigmas (the pipeline
noises the latents to the first of them), as diffusers' two-stage LTX-2 recipe refines a video.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, LTX2ConditionPipeline, LTX2ImageToVideoPipeline, LTX2Pipeline
from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

from pipelines.base import (
    OMIT,
    GenerationJob,
    LoadedPipelines,
    PromptEnhancer,
    StepCallback,
    TextTokenizer,
    VideoWithAudio,
    call_pipeline,
    check_size_multiple,
    check_text_only_enhancement,
    derive,
    encode_video,
    load_both_modes,
    no_request_defaults,
    vae_frame_count,
)
from pipelines.errors import Refused

FAMILY = "ltx-2"
CLASS_NAMES = ("LTX2Pipeline", "LTX2ImageToVideoPipeline")
AUDIO = True
CONDITIONING = frozenset({"last_image", "keyframes", "video", "extend"})
_DECODE_TIMESTEP, _DECODE_NOISE_SCALE = 0.05, 0.025  # for a VAE that conditions decoding on a timestep


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    # LTX-2.5's prompt enhancer reads text through a Gemma 4 processor: only its tokenizer is loaded
    has_processor = (DiffusionPipeline.load_config(source).get("processor") or [None])[0] is not None
    text_only = {"processor": TextTokenizer.load(source, "processor")} if has_processor else {}
    pipelines = load_both_modes(LTX2Pipeline, LTX2ImageToVideoPipeline, source, class_name, device, dtype,
                                **text_only)
    pipelines.derived["condition"] = derive(LTX2ConditionPipeline, pipelines.any, dtype)
    return pipelines


frame_count = vae_frame_count
request_defaults = no_request_defaults
LTX25_NEEDS = {"diffusers": "0.40", "transformers": "5.0"}
"""an LTX-2.5 checkpoint's: a Gemma 4 text encoder, a duration head"""
SHORTEST_AUTO_S = 1.0
"""the duration head's own lower bound (diffusers' default), lowered to half the cap below it"""


def needs(model_index: dict[str, Any]) -> dict[str, str]:
    text_encoder = str((model_index.get("text_encoder") or [None, None])[1] or "")
    parts = [model_index.get(name) or [None] for name in ("duration_head", "prompt_enhancer")]
    return LTX25_NEEDS if _gemma4(text_encoder) or any(part[0] for part in parts) else {}


def is_ltx25(pipe: Any) -> bool:
    return _gemma4(type(pipe.text_encoder).__name__)


def _gemma4(text_encoder_class: str) -> bool:
    """LTX-2.5's text encoder is a Gemma 4 model; LTX-2.0's a Gemma 3 one."""
    return text_encoder_class.startswith("Gemma4")


def predicts_duration(pipelines: LoadedPipelines) -> bool:
    return getattr(pipelines.any, "duration_head", None) is not None


def prompt_enhancer(pipelines: LoadedPipelines) -> PromptEnhancer | None:
    """LTX-2.5's dedicated enhancer (a Gemma 4 model with the checkpoint's processor), run by the
    pipeline's own `enhance_prompt` with its text-to-video system prompt (greedy decoding: the seed
    is kept for its sake alone)."""
    pipe = pipelines.any
    if getattr(pipe, "prompt_enhancer", None) is None or getattr(pipe, "processor", None) is None:
        return None  # LTX-2.0's text encoder doubles as one only with a system prompt of the caller's
    from diffusers.pipelines.ltx2.utils import LTX2_5_T2V_DEFAULT_SYSTEM_PROMPT  # type: ignore[attr-defined]

    def enhance(job: GenerationJob) -> str:
        return str(pipe.enhance_prompt(prompt=job.prompt, system_prompt=LTX2_5_T2V_DEFAULT_SYSTEM_PROMPT,
                                       seed=job.seed)[0])

    return enhance


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    check_text_only_enhancement(job, "Gemma 4")
    check_size_multiple(job, pipelines.any.vae_spatial_compression_ratio, "LTX-2")
    ratio = pipelines.any.vae_temporal_compression_ratio
    notes: list[str] = []
    taken: dict[int, str] = {}
    for name, frame, _, _ in placed_images(job):
        at = image_frame(latent_index(frame, job.num_frames, ratio), ratio)
        if at in taken:
            raise Refused(f"{name} and {taken[at]} would both be at frame {at - job.first_frame} (LTX-2 places images "
                          f"at frames 0 and {ratio}k+1): move one", field=f"{name}.frame" if "." in name else name)
        taken[at] = name
        if at != frame:
            notes.append(f"{name} asked at frame {frame - job.first_frame} is at frame {at - job.first_frame}: "
                         f"LTX-2 places images at frames 0 and {ratio}k+1")
    return notes


def placed_images(job: GenerationJob) -> list[tuple[str, int, Any, float]]:
    """(field, generated frame, image, strength) of each image the job places."""
    placed = [("image", 0, job.image, 1.0)] if job.image is not None else []
    if job.last_image is not None:
        placed.append(("last_image", job.last_returned_frame, job.last_image, 1.0))
    placed += [(f"keyframes.{i}", k.frame, k.image, k.strength) for i, k in enumerate(job.keyframes)]
    return placed


def latent_index(frame: int, num_frames: int, ratio: int) -> int:
    """The latent frame whose image position (`image_frame`) is nearest `frame`."""
    last = (num_frames - 1) // ratio
    return min(range(last + 1), key=lambda index: (abs(image_frame(index, ratio) - frame), index))


def image_frame(index: int, ratio: int) -> int:
    """Where LTX2ConditionPipeline shows an image conditioned at latent `index`: 0, then (index-1)*ratio+1."""
    return 0 if index == 0 else (index - 1) * ratio + 1


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> VideoWithAudio:
    pipe = pipelines.derived["condition"] if job.conditioning else pipelines.for_job(job)
    extra: dict[str, Any] = {
        "frame_rate": float(job.fps), "audio_guidance_scale": job.guidance_scale,
        "stg_scale": 0.0, "modality_scale": 1.0, "audio_stg_scale": 0.0, "audio_modality_scale": 1.0,
        "use_cross_timestep": is_ltx25(pipe)}  # LTX-2.5 is trained with it; LTX-2.0 without
    if pipe.vae.config.get("timestep_conditioning"):
        extra.update(decode_timestep=_DECODE_TIMESTEP, decode_noise_scale=_DECODE_NOISE_SCALE)
    if job.auto_duration:  # the duration head picks the length, up to what the request allows
        longest = job.returned_frames / job.fps
        extra.update(num_frames=None, max_seconds=longest, min_seconds=min(SHORTEST_AUTO_S, longest / 2))
    if job.video:
        extra.update(image=OMIT, **video_start(pipe, job))
    elif job.conditioning:
        ratio = pipe.vae_temporal_compression_ratio
        conditions = [LTX2VideoCondition(frames=list(job.context), index=0)] if job.context else []
        conditions += [LTX2VideoCondition(frames=image, index=latent_index(frame, job.num_frames, ratio),
                                          strength=strength) for _, frame, image, strength in placed_images(job)]
        extra.update(image=OMIT, conditions=conditions)
    output = call_pipeline(pipe, job, on_step, **extra)
    return VideoWithAudio(video=output.frames, audio=output.audio[0],
                          sample_rate=int(pipe.vocoder.config.output_sampling_rate))


def video_start(pipe: Any, job: GenerationJob) -> dict[str, Any]:
    """Video-to-video: the video's latents (the pipeline normalizes them) and the sigmas to run."""
    latents = encode_video(pipe, job)
    steps = job.num_inference_steps
    kept = int(steps * job.strength)  # diffusers' rule for img2img-style strength
    sigmas = np.linspace(1.0, 1 / steps, steps)[steps - kept:]
    return {"latents": latents, "sigmas": [float(sigma) for sigma in sigmas], "num_inference_steps": kept}
