"""Tiny random-weight LTX-Video checkpoint (text-to-video and image-to-video from one set)."""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXPipeline,
    LTXVideoTransformer3DModel,
)

from pipelines.tiny import _parts


def build_tiny(directory: Path) -> None:
    """Save a tiny random-weight LTX-Video pipeline: the real classes at toy sizes, with the
    real VAE compression ratios (32 spatial, 8 temporal) so frame and size rules are the real ones."""
    tokenizer = _parts.t5_tokenizer()
    transformer = LTXVideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16,
        cross_attention_dim=32, num_layers=2, caption_channels=_parts.TEXT_WIDTH)
    vae = AutoencoderKLLTXVideo(
        latent_channels=16, block_out_channels=(8, 16, 32, 32),
        decoder_block_out_channels=(8, 16, 32, 32), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), patch_size=4)
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
        max_image_seq_len=4096, shift_terminal=0.1)
    pipe = LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=_parts.t5_encoder(tokenizer),
                       tokenizer=tokenizer, transformer=transformer)
    _parts.save(pipe, directory)
