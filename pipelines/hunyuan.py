"""HunyuanVideo (Tencent): `HunyuanVideoPipeline` (text-to-video) and
`HunyuanVideoImageToVideoPipeline` (image-to-video), separate checkpoints.

Frame counts are 4k+1; sizes a multiple of 16 (VAE 8 x patch 2). What `guidance_scale` means
depends on the transformer:
- guidance-distilled transformers (`guidance_embeds`: HunyuanVideo, HunyuanVideo-I2V) are
  conditioned on it (the "embedded" guidance, 6.0 in Tencent's examples): one forward pass per
  step, and a negative prompt has no effect (diagnostics say so when one is sent);
- the others (HunyuanVideo-I2V-33ch) run true classifier-free guidance at `guidance_scale`
  against `negative_prompt` (two passes per step when it is > 1).
Image-to-video transformers take the image either as the first latent frame ("token_replace")
or as extra input channels ("latent_concat"); the latter decodes 4 frames fewer than it is
asked for, so it is asked for 4 more.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideoImageToVideoPipeline,
    HunyuanVideoPipeline,
    HunyuanVideoTransformer3DModel,
)
from diffusers.pipelines.hunyuan_video import pipeline_hunyuan_video, pipeline_hunyuan_video_image2video
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizerFast,
    CLIPVisionConfig,
    LlamaConfig,
    LlamaModel,
    LlamaTokenizerFast,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from pipelines import _tiny_parts
from pipelines.base import GenerationJob, LoadedPipelines, StepCallback, check_size_multiple, run_pipeline

FAMILY = "hunyuanvideo"
CLASS_NAMES = ("HunyuanVideoPipeline", "HunyuanVideoImageToVideoPipeline")


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    # no from_pipe between the two: the I2V checkpoint has its own transformer and a LLaVA text encoder
    image_to_video = class_name == "HunyuanVideoImageToVideoPipeline"
    pipeline_class = HunyuanVideoImageToVideoPipeline if image_to_video else HunyuanVideoPipeline
    # The Llama 3 tokenizer is byte-level BPE filed as "LlamaTokenizerFast"; transformers 5's
    # LlamaTokenizer swaps its pre-tokenizer for SentencePiece's and drops every space of the prompt
    # (transformers#45488). The generic fast tokenizer reads tokenizer.json as it is, on 4.x and 5.x.
    tokenizer = PreTrainedTokenizerFast.from_pretrained(source, subfolder="tokenizer")
    pipe = pipeline_class.from_pretrained(source, tokenizer=tokenizer, torch_dtype=dtype, device_map=device.type,
                                          use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    if image_to_video:
        return LoadedPipelines(t2v=None, i2v=pipe, class_name=class_name)
    return LoadedPipelines(t2v=pipe, i2v=None, class_name=class_name)


def _guidance_embedded(pipelines: LoadedPipelines) -> bool:
    return pipelines.any.transformer.config.guidance_embeds


def check_request(pipelines: LoadedPipelines, request) -> list[str]:
    pipe = pipelines.any
    check_size_multiple(request, pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size, "HunyuanVideo")
    if request.negative_prompt and _guidance_embedded(pipelines):
        return ["negative_prompt is ignored: this HunyuanVideo model is guidance-distilled (guidance_scale "
                "is its embedded guidance)"]
    return []


def temporal_ratio(pipelines: LoadedPipelines) -> int:
    """Valid frame counts are k * ratio + 1."""
    return pipelines.any.vae_scale_factor_temporal


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    pipe = pipelines.for_job(job)
    if _guidance_embedded(pipelines):
        # no negative prompt: with true_cfg_scale at 1 the pipeline would encode it for nothing
        guidance = dict(guidance_scale=job.guidance_scale, negative_prompt=None)
    else:
        # "" is a negative prompt too: true CFG needs one, and the card's default is ""
        guidance = dict(guidance_scale=1.0, true_cfg_scale=job.guidance_scale, negative_prompt=job.negative_prompt)
    num_frames = job.num_frames
    if job.image is not None and pipe.transformer.config.image_condition_type == "latent_concat":
        num_frames += pipe.vae_scale_factor_temporal  # the pipeline drops the image's 4 decoded frames
    return run_pipeline(pipe, job, on_step, num_frames=num_frames, **guidance)


# ------------------------------------------------------------------------------------------------
# Tiny random-weight checkpoints: T2V, I2V (token_replace, guidance-distilled) and I2V-33ch
# (latent_concat, true CFG), each with the real classes and locally trained tokenizers.

_LLAMA_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>", "<image>", "<pad>"]
_IMAGE_TOKENS = 576  # the I2V prompt template's image_emb_len: a 24 x 24 patch grid
_TEMPLATES = [pipeline_hunyuan_video.DEFAULT_PROMPT_TEMPLATE["template"],
              pipeline_hunyuan_video_image2video.DEFAULT_PROMPT_TEMPLATE["template"]]


def _llama_tokenizer() -> LlamaTokenizerFast:
    """Trained on both prompt templates: they tokenize to the lengths the pipelines crop at."""
    return LlamaTokenizerFast(
        tokenizer_object=_tiny_parts.llama3_tokenizer(_LLAMA_SPECIAL_TOKENS, _TEMPLATES, "<|begin_of_text|>"),
        bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>", pad_token="<pad>")


def _llama_config(tokenizer: LlamaTokenizerFast) -> LlamaConfig:
    # positions: the I2V prompt is 256 + 103 template tokens, its <image> expanded to 576
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=_tiny_parts.TEXT_WIDTH, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id)


def _clip_text() -> dict:
    tokenizer = CLIPTokenizerFast(
        tokenizer_object=_tiny_parts.clip_tokenizer(["<|startoftext|>", "<|endoftext|>"]),
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
        pad_token="<|endoftext|>", model_max_length=77)
    encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    return {"text_encoder_2": encoder, "tokenizer_2": tokenizer}


def _shared_parts() -> dict:
    vae = AutoencoderKLHunyuanVideo(
        latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4,
        spatial_compression_ratio=8, temporal_compression_ratio=4)
    return {"vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0), **_clip_text()}


def _transformer(in_channels: int, guidance_embeds: bool, **extra) -> HunyuanVideoTransformer3DModel:
    return HunyuanVideoTransformer3DModel(
        in_channels=in_channels, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=2, patch_size_t=1, guidance_embeds=guidance_embeds,
        text_embed_dim=_tiny_parts.TEXT_WIDTH, pooled_projection_dim=16, rope_axes_dim=(2, 4, 4), **extra)


def build_tiny(directory: Path) -> None:
    """HunyuanVideo T2V shape: Llama + CLIP text encoders, guidance-distilled transformer."""
    tokenizer = _llama_tokenizer()
    HunyuanVideoPipeline(
        text_encoder=LlamaModel(_llama_config(tokenizer)), tokenizer=tokenizer,
        transformer=_transformer(4, guidance_embeds=True), **_shared_parts(),
    ).save_pretrained(directory, safe_serialization=True)


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
    HunyuanVideoImageToVideoPipeline(
        text_encoder=llava, tokenizer=tokenizer, transformer=transformer,
        image_processor=CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}),
        **_shared_parts(),
    ).save_pretrained(directory, safe_serialization=True)


def build_tiny_i2v(directory: Path) -> None:
    """HunyuanVideo-I2V shape: the image replaces the first latent frame; guidance-distilled."""
    _build_tiny_i2v(directory, _transformer(4, guidance_embeds=True, image_condition_type="token_replace"))


def build_tiny_i2v_33ch(directory: Path) -> None:
    """HunyuanVideo-I2V-33ch shape: image latents and a mask as extra channels (2 x 4 + 1); true CFG."""
    _build_tiny_i2v(directory, _transformer(9, guidance_embeds=False, image_condition_type="latent_concat"))
