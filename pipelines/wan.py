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
Conditioning: `last_image` on a `WanImageToVideoPipeline` checkpoint (first and last frame, as
Wan 2.1 FLF2V is trained for; the pipeline places it on the last generated frame); `video`
(video-to-video) with `WanVideoToVideoPipeline` on a text-to-video checkpoint's weights.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLWan,
    WanImageToVideoPipeline,
    WanPipeline,
    WanVideoToVideoPipeline,
)

from pipelines.base import (
    GenerationJob,
    LoadedPipelines,
    StepCallback,
    check_size_multiple,
    derive,
    dtype_argument,
    needs_nothing,
    no_duration_prediction,
    no_prompt_enhancer,
    no_request_defaults,
    run_pipeline,
    vae_frame_count,
    video_to_video_args,
)
from pipelines.errors import CannotServe, Refused

FAMILY = "wan"
CLASS_NAMES = ("WanPipeline", "WanImageToVideoPipeline")
AUDIO = False
CONDITIONING = frozenset({"last_image", "video"})


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    vae = AutoencoderKLWan.from_pretrained(source, subfolder="vae", **dtype_argument(torch.float32),
                                           use_safetensors=True, device_map=device.type)
    common = dict(vae=vae, **dtype_argument(dtype), device_map=device.type, use_safetensors=True)
    if class_name == "WanImageToVideoPipeline":
        i2v = WanImageToVideoPipeline.from_pretrained(source, **common)
        i2v.set_progress_bar_config(disable=True)  # progress is reported through on_step
        return LoadedPipelines(t2v=None, i2v=i2v, class_name=class_name)
    t2v = WanPipeline.from_pretrained(source, **common)
    t2v.set_progress_bar_config(disable=True)
    # only a checkpoint trained for both (expand_timesteps: Wan 2.2 TI2V) animates images
    i2v = derive(WanImageToVideoPipeline, t2v, dtype) if t2v.config.expand_timesteps else None
    pipelines = LoadedPipelines(t2v=t2v, i2v=i2v, class_name=class_name)
    pipelines.derived["v2v"] = derive(WanVideoToVideoPipeline, t2v, dtype)
    t2v.vae.to(torch.float32)  # from_pipe cast the shared VAE to `dtype`: back to float32
    return pipelines


def _spatial_multiple(pipelines: LoadedPipelines) -> int:
    pipe = pipelines.any
    transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
    return pipe.vae_scale_factor_spatial * transformer.config.patch_size[1]


needs = needs_nothing
request_defaults = no_request_defaults
prompt_enhancer = no_prompt_enhancer
predicts_duration = no_duration_prediction


def check_request(pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
    check_size_multiple(job, _spatial_multiple(pipelines), "this Wan model")
    notes = []
    transformer = pipelines.any.transformer
    first_and_last = transformer is not None and bool(transformer.config.pos_embed_seq_len)
    if first_and_last and job.last_image is None:  # its transformer takes exactly two images' embeddings
        raise Refused("this Wan FLF2V checkpoint makes first-and-last-frame videos: send last_image with image",
                      field="last_image")
    if job.last_image is not None:
        if pipelines.class_name != "WanImageToVideoPipeline":
            raise CannotServe("last_image needs a Wan image-to-video checkpoint (Wan 2.1 FLF2V, Wan 2.2 I2V)",
                              field="last_image")
        if transformer is not None and transformer.config.image_dim and not first_and_last:
            raise CannotServe("last_image needs a Wan checkpoint trained for first and last frames (Wan 2.1 FLF2V, "
                              "Wan 2.2 I2V); this Wan 2.1 I2V one embeds one image", field="last_image")
        if job.image is None:
            raise Refused("last_image on Wan ends a first-and-last-frame video: send the first frame as image too",
                          field="last_image")
        if job.returned_frames != job.num_frames:
            notes.append(f"last_image is generated frame {job.num_frames - 1}, after the {job.returned_frames} "
                         "returned: ask for a 4k+1 num_frames to end on it")
    if job.video and "v2v" not in pipelines.derived:
        raise CannotServe("video-to-video runs on a Wan text-to-video checkpoint; this one is image-to-video",
                          field="video")
    return notes


frame_count = vae_frame_count


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    if job.video:
        return run_pipeline(pipelines.derived["v2v"], job, on_step, **video_to_video_args(job))
    extra = {"last_image": job.last_image} if job.last_image is not None else {}
    return run_pipeline(pipelines.for_job(job), job, on_step, **extra)
