"""Tiny random-weight HunyuanVideo checkpoints: T2V, I2V (token_replace, guidance-distilled) and
I2V-33ch (latent_concat, true CFG), each with the real classes and locally trained tokenizers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusers import (
    AutoencoderKLHunyuanVideo,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideoImageToVideoPipeline,
    HunyuanVideoPipeline,
    HunyuanVideoTransformer3DModel,
)
from diffusers.pipelines.hunyuan_video import pipeline_hunyuan_video, pipeline_hunyuan_video_image2video
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlamaModel,
    LlamaTokenizerFast,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

from pipelines.tiny import _parts

_LLAMA_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>", "<image>", "<pad>"]
_IMAGE_TOKENS = 576  # the I2V prompt template's image_emb_len: a 24 x 24 patch grid
_TEMPLATES = [str(pipeline_hunyuan_video.DEFAULT_PROMPT_TEMPLATE["template"]),
              str(pipeline_hunyuan_video_image2video.DEFAULT_PROMPT_TEMPLATE["template"])]


def _llama_tokenizer() -> LlamaTokenizerFast:
    """Trained on both prompt templates: they tokenize to the lengths the pipelines crop at."""
    return LlamaTokenizerFast(
        tokenizer_object=_parts.llama3_tokenizer(_LLAMA_SPECIAL_TOKENS, _TEMPLATES, "<|begin_of_text|>"),
        bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>", pad_token="<pad>")


def _llama_config(tokenizer: LlamaTokenizerFast) -> LlamaConfig:
    # positions: the I2V prompt is 256 + 103 template tokens, its <image> expanded to 576
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=_parts.TEXT_WIDTH, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id)


def _shared_parts() -> dict:
    vae = AutoencoderKLHunyuanVideo(
        latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4,
        spatial_compression_ratio=8, temporal_compression_ratio=4)
    encoder, tokenizer = _parts.clip_text_encoder()
    return {"vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0), "text_encoder_2": encoder,
            "tokenizer_2": tokenizer}


def _transformer(in_channels: int, guidance_embeds: bool, **extra: Any) -> HunyuanVideoTransformer3DModel:
    return HunyuanVideoTransformer3DModel(
        in_channels=in_channels, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=2, patch_size_t=1, guidance_embeds=guidance_embeds,
        text_embed_dim=_parts.TEXT_WIDTH, pooled_projection_dim=16, rope_axes_dim=(2, 4, 4), **extra)


def build_tiny(directory: Path) -> None:
    """HunyuanVideo T2V shape: Llama + CLIP text encoders, guidance-distilled transformer."""
    tokenizer = _llama_tokenizer()
    pipe = HunyuanVideoPipeline(
        text_encoder=LlamaModel(_llama_config(tokenizer)), tokenizer=tokenizer,
        transformer=_transformer(4, guidance_embeds=True), **_shared_parts(),
    )
    _parts.save(pipe, directory)


def _build_tiny_i2v(directory: Path, transformer: HunyuanVideoTransformer3DModel) -> None:
    # imported here: without torchvision, transformers warns at import that it uses the PIL backend
    from transformers import CLIPImageProcessor

    tokenizer = _llama_tokenizer()
    side = 48  # 48 / patch 2 = 24 x 24 image tokens, as 336 / 14 in the real LLaVA
    llava = LlavaForConditionalGeneration(LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=side, patch_size=2, projection_dim=8),
        text_config=_llama_config(tokenizer), image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=_IMAGE_TOKENS, pad_token_id=tokenizer.pad_token_id))
    pipe = HunyuanVideoImageToVideoPipeline(
        text_encoder=llava, tokenizer=tokenizer, transformer=transformer,
        image_processor=CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}),
        **_shared_parts(),
    )
    _parts.save(pipe, directory)


def build_tiny_i2v(directory: Path) -> None:
    """HunyuanVideo-I2V shape: the image replaces the first latent frame; guidance-distilled."""
    _build_tiny_i2v(directory, _transformer(4, guidance_embeds=True, image_condition_type="token_replace"))


def build_tiny_i2v_33ch(directory: Path) -> None:
    """HunyuanVideo-I2V-33ch shape: image latents and a mask as extra channels (2 x 4 + 1); true CFG."""
    _build_tiny_i2v(directory, _transformer(9, guidance_embeds=False, image_condition_type="latent_concat"))
