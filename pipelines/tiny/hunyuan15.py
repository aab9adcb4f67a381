"""Tiny random-weight HunyuanVideo 1.5 checkpoints: text-to-video and image-to-video are separate
checkpoints (separate transformers), as in the released 480p and 720p models."""

from __future__ import annotations

import inspect
from pathlib import Path

from diffusers import (
    AutoencoderKLHunyuanVideo15,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideo15ImageToVideoPipeline,
    HunyuanVideo15Pipeline,
    HunyuanVideo15Transformer3DModel,
)
from diffusers.guiders import ClassifierFreeGuidance
from transformers import (
    ByT5Tokenizer,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLTextModel,
    Qwen2TokenizerFast,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
    T5Config,
    T5EncoderModel,
)

from pipelines.tiny import _parts

_QWEN_WIDTH, _BYT5_WIDTH, _SIGLIP_WIDTH, _LATENT = 16, 32, 12, 8


def qwen_tokenizer() -> Qwen2TokenizerFast:
    """The pipeline's system prompt and the chat template's role names are whole words: the template
    before the user's prompt is exactly the 108 tokens the pipeline drops
    (`prompt_template_encode_start_idx`), as with the real tokenizer."""
    system_message = inspect.signature(HunyuanVideo15Pipeline._get_mllm_prompt_embeds).parameters[
        "system_message"].default
    return _parts.qwen_tokenizer([system_message, "system", "user", "assistant"])


def _components(task: str) -> dict:
    tokenizer = qwen_tokenizer()
    text_encoder = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer), hidden_size=_QWEN_WIDTH, intermediate_size=32, num_hidden_layers=3,
        num_attention_heads=2, num_key_value_heads=2, rope_theta=1000000.0,
        rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}))
    glyph_encoder = T5EncoderModel(T5Config(  # ByT5: a vocabulary of bytes
        vocab_size=384, d_model=_BYT5_WIDTH, d_kv=8, d_ff=64, num_layers=1, num_heads=2))
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=2 * _LATENT + 1, out_channels=_LATENT, num_attention_heads=2, attention_head_dim=8, num_layers=2,
        num_refiner_layers=1, mlp_ratio=2.0, text_embed_dim=_QWEN_WIDTH, text_embed_2_dim=_BYT5_WIDTH,
        image_embed_dim=_SIGLIP_WIDTH, rope_axes_dim=(2, 2, 4), target_size=64, task_type=task)
    vae = AutoencoderKLHunyuanVideo15(  # the real ratios: 16x spatial, 4x temporal
        latent_channels=_LATENT, block_out_channels=(8, 8, 16, 16, 16), layers_per_block=1,
        spatial_compression_ratio=16, temporal_compression_ratio=4)
    return dict(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
                text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=glyph_encoder,
                tokenizer_2=ByT5Tokenizer(), guider=ClassifierFreeGuidance(guidance_scale=6.0))


def build_tiny_t2v(directory: Path) -> None:
    _parts.save(HunyuanVideo15Pipeline(**_components("t2v")), directory)


def build_tiny_i2v(directory: Path) -> None:
    """The image goes in twice: as the first latent frame and through a SigLIP vision encoder."""
    image_encoder = SiglipVisionModel(SiglipVisionConfig(
        hidden_size=_SIGLIP_WIDTH, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2, image_size=32,
        patch_size=8))
    feature_extractor = SiglipImageProcessor(size={"height": 32, "width": 32})
    _parts.save(HunyuanVideo15ImageToVideoPipeline(**_components("i2v"), image_encoder=image_encoder,
                                                   feature_extractor=feature_extractor), directory)
