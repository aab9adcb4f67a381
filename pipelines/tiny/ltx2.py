"""Tiny random-weight LTX-2 checkpoint: video and a stereo soundtrack, text-to-video and
image-to-video from one set of weights."""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    FlowMatchEulerDiscreteScheduler,
    LTX2Pipeline,
    LTX2VideoTransformer3DModel,
)
from diffusers.pipelines.ltx2 import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from transformers import Gemma3Config, Gemma3ForConditionalGeneration, GemmaTokenizerFast

from pipelines.tiny import _parts

_GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]


def _gemma3(vocab_size: int, tokenizer: GemmaTokenizerFast) -> Gemma3ForConditionalGeneration:
    """Gemma 3's classes (text decoder and SigLIP vision tower) at toy sizes; LTX-2 reads the text
    decoder's hidden states of every layer."""
    ids = {token: tokenizer.get_vocab()[token] for token in _GEMMA_SPECIAL}
    text = dict(vocab_size=vocab_size, hidden_size=_parts.TEXT_WIDTH, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=2048,
                sliding_window=64)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    return Gemma3ForConditionalGeneration(Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=ids["<image_soft_token>"],
        boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"]))


def build_tiny(directory: Path) -> None:
    """The real classes at toy sizes with LTX-2's real ratios: video 32x spatial and 8x temporal,
    audio mel spectrograms at 16 kHz with a hop of 160, 4x compressed, and a vocoder that makes
    240 samples per mel frame at 24 kHz: the soundtrack has the real model's length."""
    tokenizer = GemmaTokenizerFast(
        tokenizer_object=_parts.llama3_tokenizer(_GEMMA_SPECIAL, [], "<bos>"), bos_token="<bos>",
        eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    width = _parts.TEXT_WIDTH
    transformer = LTX2VideoTransformer3DModel(
        in_channels=16, out_channels=16, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
        cross_attention_dim=16, audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2,
        audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2, qk_norm="rms_norm_across_heads",
        caption_channels=width, rope_double_precision=False, rope_type="split")
    connectors = LTX2TextConnectors(  # each connector's width is the text encoder's
        caption_channels=width, text_proj_in_factor=3, video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=width // 4, video_connector_num_layers=1,
        video_connector_num_learnable_registers=None, audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=width // 4, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None, connector_rope_base_seq_len=32, rope_theta=10000.0,
        rope_double_precision=False, causal_temporal_positioning=False, rope_type="split")
    vae = AutoencoderKLLTX2Video(  # the ratios are declared: the class would compute 64 and 16 from this layout
        latent_channels=16, block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 32),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1), decoder_inject_noise=(False,) * 4,
        spatial_compression_ratio=32, temporal_compression_ratio=8)
    audio_vae = AutoencoderKLLTX2Audio(  # base_channels = latent channels x latent mel bins (2 x 16 / 4)
        base_channels=8, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=None,
        in_channels=2, resolution=32, latent_channels=2, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=16)
    vocoder = LTX2Vocoder(
        in_channels=2 * 16, hidden_channels=32, out_channels=2, upsample_kernel_sizes=[12, 10, 4, 4, 4],
        upsample_factors=[6, 5, 2, 2, 2], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1, output_sampling_rate=24000)
    pipe = LTX2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, audio_vae=audio_vae,
                        text_encoder=_gemma3(len(tokenizer), tokenizer), tokenizer=tokenizer, connectors=connectors,
                        transformer=transformer, vocoder=vocoder)
    _parts.save(pipe, directory)
