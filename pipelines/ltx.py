"""LTX-Video (Lightricks): `LTXPipeline` and `LTXImageToVideoPipeline`.

Both pipelines have exactly the same components, so image-to-video is derived from the loaded
text-to-video pipeline with `from_pipe` (no second copy of the weights), whichever of the two
classes the checkpoint names. Frame counts must be 8k+1 (the VAE's temporal compression ratio
is 8) and sizes multiples of 32 (its spatial ratio): the ratios are read from the loaded VAE.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXImageToVideoPipeline,
    LTXPipeline,
    LTXVideoTransformer3DModel,
)

from errors import InvalidRequest
from pipelines.base import GenerationJob, LoadedPipelines, StepCallback

FAMILY = "ltx-video"
CLASS_NAMES = ("LTXPipeline", "LTXImageToVideoPipeline")
# Recommended by Lightricks for the VAEs that condition decoding on a timestep (0.9.1 and later).
_DECODE_TIMESTEP, _DECODE_NOISE_SCALE = 0.05, 0.025


def load(source: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    """Load from a local diffusers directory or a Hub id (safetensors only, no remote code)."""
    t2v = LTXPipeline.from_pretrained(source, dtype=dtype, device_map=device.type, use_safetensors=True)
    t2v.set_progress_bar_config(disable=True)  # progress is reported through on_step
    # from_pipe casts the shared modules to its own dtype argument (float32 when absent)
    i2v = LTXImageToVideoPipeline.from_pipe(t2v, dtype=dtype)
    i2v.set_progress_bar_config(disable=True)
    class_name = LTXPipeline.load_config(source).get("_class_name", "LTXPipeline")
    return LoadedPipelines(t2v=t2v, i2v=i2v, class_name=class_name)


def frames_to_generate(pipelines: LoadedPipelines, num_frames: int) -> int:
    """The smallest valid count (k * ratio + 1) that is >= num_frames."""
    ratio = pipelines.t2v.vae_temporal_compression_ratio
    return max(0, math.ceil((num_frames - 1) / ratio)) * ratio + 1


def check_request(pipelines: LoadedPipelines, num_inference_steps: int) -> None:
    """Family rules beyond the API's own. A scheduler that stretches its sigmas to a terminal
    value (`shift_terminal`, LTX-Video 0.9.1 and later) divides by zero with a single step."""
    if num_inference_steps < 2 and pipelines.t2v.scheduler.config.get("shift_terminal"):
        raise InvalidRequest("this model's scheduler needs at least 2 steps", field="num_inference_steps")


def frame_rule(pipelines: LoadedPipelines) -> str:
    return f"{pipelines.t2v.vae_temporal_compression_ratio}k+1 frames"


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    """Run the pipeline; returns `(1, F, 3, H, W)` floats in [0, 1] on the pipeline's device."""
    pipe = pipelines.t2v if job.image is None else pipelines.i2v

    def step_end(_pipe, step: int, _timestep, callback_kwargs: dict) -> dict:
        on_step(step + 1, job.num_inference_steps)
        return callback_kwargs

    kwargs = {}
    if job.image is not None:
        kwargs["image"] = job.image
    if pipe.vae.config.get("timestep_conditioning"):
        kwargs.update(decode_timestep=_DECODE_TIMESTEP, decode_noise_scale=_DECODE_NOISE_SCALE)
    # A CPU generator draws the same noise on every device: a seed means the same video anywhere.
    generator = torch.Generator("cpu").manual_seed(job.seed)
    result = pipe(
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        height=job.height,
        width=job.width,
        num_frames=job.num_frames,
        frame_rate=job.fps,
        num_inference_steps=job.num_inference_steps,
        guidance_scale=job.guidance_scale,
        generator=generator,
        output_type="pt",
        callback_on_step_end=step_end,
        **kwargs,
    )
    return result.frames


def build_tiny(directory: Path, tokenizer, text_encoder) -> None:
    """Save a tiny random-weight LTX-Video pipeline: the real classes at toy sizes, with the
    real VAE compression ratios (32 spatial, 8 temporal) so frame and size rules are the real ones."""
    transformer = LTXVideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16,
        cross_attention_dim=32, num_layers=2, caption_channels=text_encoder.config.d_model)
    vae = AutoencoderKLLTXVideo(
        latent_channels=16, block_out_channels=(8, 16, 32, 32),
        decoder_block_out_channels=(8, 16, 32, 32), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), patch_size=4)
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
        max_image_seq_len=4096, shift_terminal=0.1)
    pipe = LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                       tokenizer=tokenizer, transformer=transformer)
    pipe.save_pretrained(directory, safe_serialization=True)
