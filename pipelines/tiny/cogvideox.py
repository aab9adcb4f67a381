"""Tiny random-weight CogVideoX checkpoints: a 2B-shaped text-to-video one, a 5B-I2V-shaped
image-to-video one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
)

from pipelines.cogvideox import MAX_TEXT_TOKENS
from pipelines.tiny import _parts


def _tiny_parts_for(transformer: CogVideoXTransformer3DModel) -> dict:
    tokenizer = _parts.t5_tokenizer()
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2,
        temporal_compression_ratio=4)
    return {"tokenizer": tokenizer, "text_encoder": _parts.t5_encoder(tokenizer), "vae": vae,
            "transformer": transformer, "scheduler": CogVideoXDDIMScheduler()}


def _tiny_transformer(**shape: Any) -> CogVideoXTransformer3DModel:
    return CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, out_channels=4, time_embed_dim=4,
        text_embed_dim=_parts.TEXT_WIDTH, num_layers=1, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=MAX_TEXT_TOKENS, **shape)


def build_tiny_t2v(directory: Path) -> None:
    transformer = _tiny_transformer(in_channels=4, sample_height=8, sample_width=12)
    pipe = CogVideoXPipeline(**_tiny_parts_for(transformer))
    _parts.save(pipe, directory)


def build_tiny_i2v(directory: Path) -> None:
    """Learned positional embeddings for a 64x96 training size, like CogVideoX-5b-I2V's 480x720."""
    transformer = _tiny_transformer(in_channels=8, sample_height=8, sample_width=12,
                                    use_learned_positional_embeddings=True, use_rotary_positional_embeddings=True)
    pipe = CogVideoXImageToVideoPipeline(**_tiny_parts_for(transformer))
    _parts.save(pipe, directory)
