"""A tiny random-weight Kandinsky 6.0 checkpoint (current library generation: diffusers 0.42):
`Kandinsky6TI2VAPipeline`, text or image to video with sound from one transformer, with the real
audio path (MMAudio VAE at 44.1 kHz, latents every 1024 samples; a BigVGAN vocoder upsampling 512x)
and a distilled variant on the `PiflowScheduler`. Its tokenizer is stored as Kandinsky 5's is
(`pipelines/tiny/kandinsky5.py`)."""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    Kandinsky6TI2VAPipeline,
    Kandinsky6Transformer3DModel,
    MMAudioVAE,
    MMAudioVocoder,
    PiflowScheduler,
)
from diffusers.pipelines.kandinsky6 import pipeline_kandinsky6_ti2va

from pipelines.tiny import kandinsky5

_AUDIO_LATENT = 4  # audio latent channels (the transformer's and the audio VAE's)


def _components(output_heads: int = 1) -> dict:
    """`output_heads`: the distilled transformers predict `n_grid` values per latent channel (the
    Piflow policy's grid), video and audio alike."""
    text = kandinsky5.text_components(str(pipeline_kandinsky6_ti2va._PROMPT_TEMPLATE))
    transformer = Kandinsky6Transformer3DModel(
        in_visual_dim=kandinsky5.LATENT, out_visual_dim=kandinsky5.LATENT * output_heads,
        in_text_dim=kandinsky5.QWEN_WIDTH, in_text_dim2=kandinsky5.CLIP_WIDTH, time_dim=16, patch_size=(1, 2, 2),
        model_dim=16, ff_dim=32, num_text_blocks=1, num_visual_blocks=2, axes_dims=(2, 2, 4), visual_cond=True,
        in_audio_dim=_AUDIO_LATENT, out_audio_dim=_AUDIO_LATENT * output_heads,
        visual_token_type_num_embeddings=2)  # 2: text-to-video and image-to-video tokens
    audio_vae = MMAudioVAE(mel_bins=16, latent_channels=_AUDIO_LATENT, hidden_channels=8,
                           channel_multipliers=(1, 2), layers_per_block=1, sample_rate=44_100, n_fft=2048,
                           hop_length=512)
    vocoder = MMAudioVocoder(num_mels=16, upsample_initial_channel=128, upsample_rates=(8, 4, 2, 2, 2, 2),
                             upsample_kernel_sizes=(16, 8, 4, 4, 4, 4), resblock_kernel_sizes=(3,),
                             resblock_dilation_sizes=((1,),))
    return dict(transformer=transformer, vae=kandinsky5.hunyuan_vae(), audio_vae=audio_vae, vocoder=vocoder, **text)


def build_tiny(directory: Path) -> None:
    """Guidance-free sampling is the distilled checkpoints'; this one is the base model's shape."""
    pipe = Kandinsky6TI2VAPipeline(**_components(), scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0))
    kandinsky5.save_with_processor(pipe, directory, "Qwen2_5_VLProcessor")


def build_tiny_distilled(directory: Path) -> None:
    """The distilled checkpoints' scheduler: run with guidance 1 (and 16 steps on the real ones)."""
    scheduler = PiflowScheduler()
    pipe = Kandinsky6TI2VAPipeline(**_components(output_heads=scheduler.config.n_grid), scheduler=scheduler)
    kandinsky5.save_with_processor(pipe, directory, "Qwen2_5_VLProcessor")

