"""CogVideoX (THUDM/Zhipu): `CogVideoXPipeline` and `CogVideoXImageToVideoPipeline`.

Text-to-video and image-to-video are separate checkpoints (the image-to-video transformer takes
the image latents as extra input channels), so each loads one mode and the other is `unsupported`.
Frame counts are 4k+1 (the VAE's temporal ratio; CogVideoX 1.5's transformer pads its latent
frames itself); sizes a multiple of 16. A transformer with *learned* positional embeddings
(CogVideoX-5b-I2V) only generates at its training size (720x480): other sizes are refused with
that size named, instead of failing inside the model. `video` (video-to-video) runs
`CogVideoXVideoToVideoPipeline` on a text-to-video checkpoint's weights (`from_pipe`).
"""

from __future__ import annotations

import torch
from diffusers import (
    CogVideoXImageToVideoPipeline,
    CogVideoXPipeline,
    CogVideoXVideoToVideoPipeline,
)

from pipelines.base import (
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    check_size_multiple,
    derive,
    load_one_mode,
    needs_nothing,
    no_duration_prediction,
    no_prompt_enhancer,
    no_request_defaults,
    run_pipeline,
    vae_frame_count,
    video_to_video_args,
)
from pipelines.errors import CannotServe, Refused

FAMILY = "cogvideox"
CLASS_NAMES = ("CogVideoXPipeline", "CogVideoXImageToVideoPipeline")
AUDIO = False
CONDITIONING = frozenset({"video"})
MAX_TEXT_TOKENS = 226  # the pipelines' max_sequence_length; the 2B transformer embeds that many


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    pipelines = load_one_mode(CogVideoXPipeline, CogVideoXImageToVideoPipeline, source, class_name, device, dtype)
    if pipelines.t2v is not None:
        pipelines.derived["v2v"] = derive(CogVideoXVideoToVideoPipeline, pipelines.t2v, dtype)
    return pipelines


needs = needs_nothing
request_defaults = no_request_defaults
prompt_enhancer = no_prompt_enhancer
predicts_duration = no_duration_prediction


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    pipe = pipelines.any
    config = pipe.transformer.config
    check_size_multiple(job, pipe.vae_scale_factor_spatial * config.patch_size, "CogVideoX")
    if config.use_learned_positional_embeddings:
        scale = pipe.vae_scale_factor_spatial
        size = (config.sample_height * scale, config.sample_width * scale)
        if (job.height, job.width) != size:
            raise Refused(f"this CogVideoX checkpoint generates only at height {size[0]}, width {size[1]} "
                          "(learned positional embeddings)", field="height")
    if job.video and "v2v" not in pipelines.derived:
        raise CannotServe("video-to-video runs on a CogVideoX text-to-video checkpoint; this one is image-to-video",
                          field="video")
    return []


frame_count = vae_frame_count


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    if job.video:
        return run_pipeline(pipelines.derived["v2v"], job, on_step, max_sequence_length=MAX_TEXT_TOKENS,
                            **video_to_video_args(job))
    return run_pipeline(pipelines.for_job(job), job, on_step, max_sequence_length=MAX_TEXT_TOKENS)
