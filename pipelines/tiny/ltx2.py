"""Tiny random-weight LTX-2 and LTX-2.5 checkpoints: video and a stereo soundtrack, text-to-video
and image-to-video from one set of weights. LTX-2.5's (current library generation) has a Gemma 4
text encoder and a duration head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _gemma_tokenizer(special: list[str] = _GEMMA_SPECIAL, chat_template: str | None = None) -> GemmaTokenizerFast:
    return GemmaTokenizerFast(
        tokenizer_object=_parts.llama3_tokenizer(special, [], "<bos>"), bos_token="<bos>",
        eos_token="<eos>", pad_token="<pad>", unk_token="<unk>", chat_template=chat_template)


# Gemma's turn format (the prompt enhancer's chat template), text and image parts
_GEMMA_CHAT = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<start_of_image>{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def _gemma4_text(tokenizer: GemmaTokenizerFast) -> dict[str, Any]:
    ids = tokenizer.get_vocab()
    return dict(vocab_size=len(tokenizer), hidden_size=_parts.TEXT_WIDTH, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16, global_head_dim=16,
                max_position_embeddings=2048, sliding_window=64, layer_types=["sliding_attention", "full_attention"],
                pad_token_id=ids["<pad>"], eos_token_id=ids["<eos>"], bos_token_id=ids["<bos>"])


def _gemma4(tokenizer: GemmaTokenizerFast) -> Any:
    """Gemma 4's unified model at a toy size, text only (its vision and audio towers are optional)."""
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration  # type: ignore[attr-defined]

    ids = tokenizer.get_vocab()
    unused = ids["<unk>"]  # the audio and video token ids: no such towers here
    return Gemma4UnifiedForConditionalGeneration(Gemma4UnifiedConfig(
        text_config=_gemma4_text(tokenizer), boi_token_id=ids["<start_of_image>"], eoi_token_id=ids["<end_of_image>"],
        image_token_id=ids["<image_soft_token>"], video_token_id=unused, boa_token_id=unused,
        eoa_token_index=unused, audio_token_id=unused))


def _gemma4_enhancer(tokenizer: GemmaTokenizerFast) -> Any:
    """The prompt enhancer (Gemma 4 E2B's class) at a toy size, text only; its per-layer input
    embeddings sized to the toy vocabulary (the class defaults to the real 262144 x 256)."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration  # type: ignore[attr-defined]

    ids = tokenizer.get_vocab()
    text = {**_gemma4_text(tokenizer), "vocab_size_per_layer_input": len(tokenizer), "hidden_size_per_layer_input": 8}
    return Gemma4ForConditionalGeneration(Gemma4Config(
        text_config=text, vision_config=None, audio_config=None, image_token_id=ids["<image_soft_token>"],
        boi_token_id=ids["<start_of_image>"], eoi_token_id=ids["<end_of_image>"]))


def build_tiny(directory: Path) -> None:
    """The real classes at toy sizes with LTX-2's real ratios: video 32x spatial and 8x temporal,
    audio mel spectrograms at 16 kHz with a hop of 160, 4x compressed, and a vocoder that makes
    240 samples per mel frame at 24 kHz: the soundtrack has the real model's length."""
    tokenizer = _gemma_tokenizer()
    parts = _audio_video()  # drawn before the text encoder, as the random weights always were
    pipe = LTX2Pipeline(text_encoder=_gemma3(len(tokenizer), tokenizer), tokenizer=tokenizer, **parts)
    _parts.save(pipe, directory)


def build_tiny_25(directory: Path) -> None:
    """LTX-2.5's shape: LTX-2's, with a Gemma 4 text encoder, a duration head reading both
    connectors' outputs (each as wide as the text encoder), and the vocoder with bandwidth
    extension: 16 kHz from the mel frames (160 samples each), then 3x to 48 kHz, the real rates (the
    widths halve at each upsampling, down to 2 channels); and the prompt enhancer, whose processor
    folder holds its tokenizer with a chat template (Gemma's turn format)."""
    from diffusers.pipelines.ltx2.duration_head import LTX2DurationHead  # type: ignore[import-not-found]
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE

    tokenizer = _gemma_tokenizer([*_GEMMA_SPECIAL, "<start_of_turn>", "<end_of_turn>"], _GEMMA_CHAT)
    parts = _audio_video()
    width = _parts.TEXT_WIDTH
    duration_head = LTX2DurationHead(video_cross_attention_dim=width, audio_cross_attention_dim=width,
                                     pooler_hidden_dim=16, num_pooler_heads=2, mlp_hidden_dim=16)
    mel_bins = parts["audio_vae"].config.mel_bins
    parts["vocoder"] = LTX2VocoderWithBWE(
        in_channels=2 * mel_bins, hidden_channels=128, upsample_kernel_sizes=[11, 4, 4, 4, 4, 4],
        upsample_factors=[5, 2, 2, 2, 2, 2], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]],
        bwe_in_channels=2 * mel_bins, bwe_hidden_channels=64, bwe_upsample_kernel_sizes=[12, 11, 4, 4, 4],
        bwe_upsample_factors=[6, 5, 2, 2, 2], bwe_resnet_kernel_sizes=[3], bwe_resnet_dilations=[[1, 3, 5]],
        num_mel_channels=mel_bins, input_sampling_rate=16000, output_sampling_rate=48000)
    pipe = LTX2Pipeline(text_encoder=_gemma4(tokenizer), tokenizer=tokenizer, duration_head=duration_head,
                        prompt_enhancer=_gemma4_enhancer(tokenizer), **parts)
    _parts.save(pipe, directory)
    _parts.name_processor(directory, "processor", "Gemma4Processor", tokenizer)


def _audio_video() -> dict[str, Any]:
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
    return dict(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, audio_vae=audio_vae, connectors=connectors,
                transformer=transformer, vocoder=vocoder)
