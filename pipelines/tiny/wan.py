"""Tiny random-weight Wan checkpoints of the four kinds: 2.1 T2V, 2.1 I2V (CLIP image
encoder), 2.1 FLF2V (I2V whose transformer takes two images' embeddings: first and last frame),
2.2 TI2V (one set of weights for both modes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusers import (
    AutoencoderKLWan,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

from pipelines.tiny import _parts


def _tiny_text() -> dict:
    tokenizer = _parts.t5_tokenizer()
    encoder = UMT5EncoderModel(UMT5Config(**_parts.t5_config(len(tokenizer))))
    return {"tokenizer": tokenizer, "text_encoder": encoder}


def _tiny_transformer(channels_in: int, channels_out: int, **extra: Any) -> WanTransformer3DModel:
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=channels_in,
        out_channels=channels_out, text_dim=_parts.TEXT_WIDTH, freq_dim=32, ffn_dim=32, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32, **extra)


def _scheduler() -> UniPCMultistepScheduler:
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


def _wan21_vae() -> AutoencoderKLWan:
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def build_tiny_t2v(directory: Path) -> None:
    """Wan 2.1 T2V shape: text-to-video only."""
    pipe = WanPipeline(vae=_wan21_vae(), scheduler=_scheduler(), transformer=_tiny_transformer(16, 16),
                **_tiny_text())
    _parts.save(pipe, directory)


def build_tiny_i2v(directory: Path, **transformer: Any) -> None:
    """Wan 2.1 I2V shape: image latents and a CLIP image encoder; image-to-video only."""
    # imported here: without torchvision, transformers warns at import that it uses the PIL backend
    from transformers import CLIPImageProcessor

    image_encoder = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=8, projection_dim=8, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        intermediate_size=16, patch_size=8))
    pipe = WanImageToVideoPipeline(
        vae=_wan21_vae(), scheduler=_scheduler(),
        transformer=_tiny_transformer(36, 16, image_dim=8, **transformer), image_encoder=image_encoder,
        image_processor=CLIPImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}),
        **_tiny_text())
    _parts.save(pipe, directory)


def build_tiny_flf2v(directory: Path) -> None:
    """Wan 2.1 FLF2V shape: as I2V, with a position embedding over both images' CLIP tokens
    (2 x 17 here, as 2 x 257 in the real one)."""
    build_tiny_i2v(directory, pos_embed_seq_len=2 * 17)


def build_tiny_ti2v(directory: Path) -> None:
    """Wan 2.2 TI2V 5B shape: a 48-channel VAE with 16x spatial compression, expand_timesteps;
    one set of weights for both modes."""
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
        latents_mean=[0.0] * 48, latents_std=[1.0] * 48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        scale_factor_spatial=16, scale_factor_temporal=4, temperal_downsample=[False, True, True])
    pipe = WanPipeline(vae=vae, scheduler=_scheduler(), transformer=_tiny_transformer(48, 48), expand_timesteps=True,
                **_tiny_text())
    _parts.save(pipe, directory)
