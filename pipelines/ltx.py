"""LTX-Video (Lightricks): `LTXPipeline` and `LTXImageToVideoPipeline`.

Both pipelines have exactly the same components, so image-to-video is derived from the loaded
text-to-video pipeline with `from_pipe` (no second copy of the weights), whichever of the two
classes the checkpoint names. Frame counts must be 8k+1 (the VAE's temporal compression ratio
is 8) and sizes multiples of 32 (its spatial ratio): the ratios are read from the loaded VAE.
"""

from __future__ import annotations

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
from pipelines import _tiny_parts
from pipelines.base import GenerationJob, LoadedPipelines, StepCallback, run_pipeline

FAMILY = "ltx-video"
CLASS_NAMES = ("LTXPipeline", "LTXImageToVideoPipeline")
# Recommended by Lightricks for the VAEs that condition decoding on a timestep (0.9.1 and later).
_DECODE_TIMESTEP, _DECODE_NOISE_SCALE = 0.05, 0.025


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    """Load from a local diffusers directory or a Hub id (safetensors only, no remote code)."""
    t2v = LTXPipeline.from_pretrained(source, torch_dtype=dtype, device_map=device.type, use_safetensors=True)
    t2v.set_progress_bar_config(disable=True)  # progress is reported through on_step
    # from_pipe casts the shared modules to its own dtype argument (float32 when absent)
    i2v = LTXImageToVideoPipeline.from_pipe(t2v, torch_dtype=dtype)
    i2v.set_progress_bar_config(disable=True)
    return LoadedPipelines(t2v=t2v, i2v=i2v, class_name=class_name)


def temporal_ratio(pipelines: LoadedPipelines) -> int:
    """Valid frame counts are k * ratio + 1."""
    return pipelines.any.vae_temporal_compression_ratio


def check_request(pipelines: LoadedPipelines, request) -> list[str]:
    """Family rules beyond the API's own. A scheduler that stretches its sigmas to a terminal
    value (`shift_terminal`, LTX-Video 0.9.1 and later) divides by zero with a single step."""
    if request.num_inference_steps < 2 and pipelines.any.scheduler.config.get("shift_terminal"):
        raise InvalidRequest("this model's scheduler needs at least 2 steps", field="num_inference_steps")
    return []


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    pipe = pipelines.for_job(job)
    extra = {"frame_rate": job.fps}  # LTX scales its rotary position embedding in time by it
    if pipe.vae.config.get("timestep_conditioning"):
        extra.update(decode_timestep=_DECODE_TIMESTEP, decode_noise_scale=_DECODE_NOISE_SCALE)
    return run_pipeline(pipe, job, on_step, **extra)


def build_tiny(directory: Path) -> None:
    """Save a tiny random-weight LTX-Video pipeline: the real classes at toy sizes, with the
    real VAE compression ratios (32 spatial, 8 temporal) so frame and size rules are the real ones."""
    tokenizer = _tiny_parts.t5_tokenizer()
    transformer = LTXVideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16,
        cross_attention_dim=32, num_layers=2, caption_channels=_tiny_parts.TEXT_WIDTH)
    vae = AutoencoderKLLTXVideo(
        latent_channels=16, block_out_channels=(8, 16, 32, 32),
        decoder_block_out_channels=(8, 16, 32, 32), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), patch_size=4)
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
        max_image_seq_len=4096, shift_terminal=0.1)
    pipe = LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=_tiny_parts.t5_encoder(tokenizer),
                       tokenizer=tokenizer, transformer=transformer)
    pipe.save_pretrained(directory, safe_serialization=True)
