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

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLWan,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

from pipelines import _tiny_parts
from pipelines.base import GenerationJob, LoadedPipelines, StepCallback, check_size_multiple, run_pipeline

FAMILY = "wan"
CLASS_NAMES = ("WanPipeline", "WanImageToVideoPipeline")


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    vae = AutoencoderKLWan.from_pretrained(source, subfolder="vae", torch_dtype=torch.float32,
                                           use_safetensors=True, device_map=device.type)
    common = dict(vae=vae, torch_dtype=dtype, device_map=device.type, use_safetensors=True)
    if class_name == "WanImageToVideoPipeline":
        i2v = WanImageToVideoPipeline.from_pretrained(source, **common)
        t2v = None
    else:
        t2v = WanPipeline.from_pretrained(source, **common)
        # only a checkpoint trained for both (expand_timesteps: Wan 2.2 TI2V) animates images
        i2v = WanImageToVideoPipeline.from_pipe(t2v, torch_dtype=dtype) if t2v.config.expand_timesteps else None
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


def check_request(pipelines: LoadedPipelines, request) -> list[str]:
    check_size_multiple(request, _spatial_multiple(pipelines), "this Wan model")
    return []


def temporal_ratio(pipelines: LoadedPipelines) -> int:
    """Valid frame counts are k * ratio + 1."""
    return pipelines.any.vae_scale_factor_temporal


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    return run_pipeline(pipelines.for_job(job), job, on_step)


# ------------------------------------------------------------------------------------------------
# Tiny random-weight checkpoints of the three kinds, for the tests and the demo.

def _tiny_text() -> dict:
    tokenizer = _tiny_parts.t5_tokenizer()
    encoder = UMT5EncoderModel(UMT5Config(**_tiny_parts.t5_config(len(tokenizer))))
    return {"tokenizer": tokenizer, "text_encoder": encoder}


def _tiny_transformer(channels_in: int, channels_out: int, **extra) -> WanTransformer3DModel:
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=channels_in,
        out_channels=channels_out, text_dim=_tiny_parts.TEXT_WIDTH, freq_dim=32, ffn_dim=32, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32, **extra)


def _scheduler() -> UniPCMultistepScheduler:
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


def _wan21_vae() -> AutoencoderKLWan:
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def build_tiny_t2v(directory: Path) -> None:
    """Wan 2.1 T2V shape: text-to-video only."""
    WanPipeline(vae=_wan21_vae(), scheduler=_scheduler(), transformer=_tiny_transformer(16, 16),
                **_tiny_text()).save_pretrained(directory, safe_serialization=True)


def build_tiny_i2v(directory: Path) -> None:
    """Wan 2.1 I2V shape: image latents and a CLIP image encoder; image-to-video only."""
    # imported here: without torchvision, transformers warns at import that it uses the PIL backend
    from transformers import CLIPImageProcessor

    image_encoder = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=8, projection_dim=8, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        intermediate_size=16, patch_size=8))
    WanImageToVideoPipeline(
        vae=_wan21_vae(), scheduler=_scheduler(), transformer=_tiny_transformer(36, 16, image_dim=8),
        image_encoder=image_encoder, image_processor=CLIPImageProcessor(crop_size=32, size=32),
        **_tiny_text()).save_pretrained(directory, safe_serialization=True)


def build_tiny_ti2v(directory: Path) -> None:
    """Wan 2.2 TI2V 5B shape: a 48-channel VAE with 16x spatial compression, expand_timesteps;
    one set of weights for both modes."""
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
        latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True])
    WanPipeline(vae=vae, scheduler=_scheduler(), transformer=_tiny_transformer(48, 48), expand_timesteps=True,
                **_tiny_text()).save_pretrained(directory, safe_serialization=True)
