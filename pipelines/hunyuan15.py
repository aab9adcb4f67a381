"""HunyuanVideo 1.5 (Tencent): `HunyuanVideo15Pipeline` (text-to-video) and
`HunyuanVideo15ImageToVideoPipeline` (image-to-video), separate checkpoints with their own
transformers, so each serves its own mode.

Frame counts are 4k+1 and sizes multiples of 16 (the VAE's ratios; the pipelines round other
values down silently, so the handler asks for valid ones). Guidance is classifier-free through the
pipeline's `guider` component: `guidance_scale` sets its scale for the call (the checkpoints ship
6.0), against `negative_prompt`. The pipelines take no step callback, so progress is reported
from the scheduler's step. The image-to-video pipeline picks its own size from the image's aspect
and the transformer's `target_size`; the handler generates at exactly the requested size instead
(the image cropped and scaled to it, as for every family).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import HunyuanVideo15ImageToVideoPipeline, HunyuanVideo15Pipeline

from pipelines.base import (
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    check_size_multiple,
    common_args,
    load_one_mode,
    needs_nothing,
    no_duration_prediction,
    no_prompt_enhancer,
    no_request_defaults,
    vae_frame_count,
)

FAMILY = "hunyuanvideo-1.5"
CLASS_NAMES = ("HunyuanVideo15Pipeline", "HunyuanVideo15ImageToVideoPipeline")
AUDIO = False
CONDITIONING: frozenset[str] = frozenset()  # last_image, keyframes, video, extend: none


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    return load_one_mode(HunyuanVideo15Pipeline, HunyuanVideo15ImageToVideoPipeline, source, class_name, device, dtype)


frame_count = vae_frame_count


needs = needs_nothing
request_defaults = no_request_defaults
prompt_enhancer = no_prompt_enhancer
predicts_duration = no_duration_prediction


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    pipe = pipelines.any
    check_size_multiple(job, pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size,
                        "HunyuanVideo 1.5")
    return []


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    pipe = pipelines.for_job(job)
    args = common_args(job)  # no guidance_scale, no step callback: these pipelines take neither
    pipe.guider.guidance_scale = job.guidance_scale  # read at every step of this call (under the model lock)
    steps_done = 0
    scheduler_step = pipe.scheduler.step

    def step_and_report(*step_args: Any, **step_kwargs: Any) -> Any:
        nonlocal steps_done
        result = scheduler_step(*step_args, **step_kwargs)
        steps_done += 1
        on_step(steps_done, job.num_inference_steps)
        return result

    pipe.scheduler.step = step_and_report
    if job.image is None:
        args.update(height=job.height, width=job.width)
    else:  # the image-to-video pipeline takes no size
        pipe.video_processor.calculate_default_height_width = lambda **_: (job.height, job.width)
    try:
        return pipe(**args).frames
    finally:  # the instance attributes go: the classes' own methods are back
        del pipe.scheduler.step
        vars(pipe.video_processor).pop("calculate_default_height_width", None)
