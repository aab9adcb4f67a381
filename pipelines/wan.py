"""Wan 2.1 / 2.2 (Alibaba): `WanPipeline` and `WanImageToVideoPipeline`.

Which modes a checkpoint can do depends on its weights, not on the family:
- a `WanPipeline` checkpoint (Wan 2.1 T2V 1.3B/14B, Wan 2.2 T2V A14B) is text-to-video only: its
  transformer takes no image latents;
- a `WanPipeline` checkpoint with `expand_timesteps` (Wan 2.2 TI2V 5B) does both, and
  image-to-video is derived with `from_pipe` on the same weights;
- a `WanImageToVideoPipeline` checkpoint (Wan 2.1 I2V 14B with its CLIP image encoder, Wan 2.2
  I2V A14B) is image-to-video only.
Frame counts are 4k+1 (the VAE's temporal ratio); sizes a multiple of VAE ratio x patch size
(16, or 32 for Wan 2.2 TI2V). The VAE is loaded in float32, as the Wan authors recommend.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLWan,
    WanImageToVideoPipeline,
    WanPipeline,
)

from pipelines.base import (
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    check_size_multiple,
    dtype_argument,
    run_pipeline,
    vae_frame_count,
)

FAMILY = "wan"
CLASS_NAMES = ("WanPipeline", "WanImageToVideoPipeline")
AUDIO = False


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    vae = AutoencoderKLWan.from_pretrained(source, subfolder="vae", **dtype_argument(torch.float32),
                                           use_safetensors=True, device_map=device.type)
    common = dict(vae=vae, **dtype_argument(dtype), device_map=device.type, use_safetensors=True)
    if class_name == "WanImageToVideoPipeline":
        i2v = WanImageToVideoPipeline.from_pretrained(source, **common)
        t2v = None
    else:
        t2v = WanPipeline.from_pretrained(source, **common)
        # only a checkpoint trained for both (expand_timesteps: Wan 2.2 TI2V) animates images
        i2v = WanImageToVideoPipeline.from_pipe(t2v, **dtype_argument(dtype)) if t2v.config.expand_timesteps else None
        if i2v is not None:
            i2v.vae.to(torch.float32)  # from_pipe cast the shared VAE to `dtype`: back to float32
    for pipe in (t2v, i2v):
        if pipe is not None:
            pipe.set_progress_bar_config(disable=True)
    return LoadedPipelines(t2v=t2v, i2v=i2v, class_name=class_name)


def _spatial_multiple(pipelines: LoadedPipelines) -> int:
    pipe = pipelines.any
    transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
    return pipe.vae_scale_factor_spatial * transformer.config.patch_size[1]


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    check_size_multiple(job, _spatial_multiple(pipelines), "this Wan model")
    return []


frame_count = vae_frame_count


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    return run_pipeline(pipelines.for_job(job), job, on_step)
