"""HunyuanVideo (Tencent): `HunyuanVideoPipeline`, text-to-video.

HunyuanVideo is guidance-distilled: the card's `guidance_scale` is the guidance the transformer
is conditioned on (its "embedded" guidance, 6.0 in Tencent's examples), one forward pass per
step, and a negative prompt has no effect (diagnostics say so when one is sent). Frame counts
are 4k+1; sizes a multiple of 16 (VAE 8 x patch 2). The image-to-video checkpoint
(`HunyuanVideoImageToVideoPipeline`, a LLaVA text encoder) is not served yet: it is refused at
start-up by class name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo,
    FlowMatchEulerDiscreteScheduler,
    HunyuanVideoPipeline,
    HunyuanVideoTransformer3DModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, LlamaConfig, LlamaModel, LlamaTokenizer

from pipelines import _tiny_parts
from pipelines.base import GenerationJob, LoadedPipelines, StepCallback, check_size_multiple, run_pipeline

FAMILY = "hunyuanvideo"
CLASS_NAMES = ("HunyuanVideoPipeline",)


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    pipe = HunyuanVideoPipeline.from_pretrained(source, dtype=dtype, device_map=device.type, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return LoadedPipelines(t2v=pipe, i2v=None, class_name=class_name)


def check_request(pipelines: LoadedPipelines, request) -> list[str]:
    pipe = pipelines.t2v
    check_size_multiple(request, pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size, "HunyuanVideo")
    if request.negative_prompt:
        return ["negative_prompt is ignored: HunyuanVideo is guidance-distilled (guidance_scale is its "
                "embedded guidance)"]
    return []


def temporal_ratio(pipelines: LoadedPipelines) -> int:
    """Valid frame counts are k * ratio + 1."""
    return pipelines.t2v.vae_scale_factor_temporal


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    # no negative prompt: with true_cfg_scale at 1 the pipeline would encode it for nothing
    return run_pipeline(pipelines.t2v, job, on_step, negative_prompt=None)


# ------------------------------------------------------------------------------------------------

def build_tiny(directory: Path) -> None:
    """Tiny HunyuanVideo: Llama + CLIP text encoders with BPE tokenizers trained here."""
    llama_tokenizer = LlamaTokenizer(
        tokenizer_object=_tiny_parts.bpe_tokenizer(["<unk>", "<s>", "</s>", "<pad>"]),
        unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    clip_tokenizer = CLIPTokenizer(
        tokenizer_object=_tiny_parts.bpe_tokenizer(["<|startoftext|>", "<|endoftext|>"]),
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
        pad_token="<|endoftext|>", model_max_length=77)
    llama = LlamaModel(LlamaConfig(
        vocab_size=len(llama_tokenizer), hidden_size=_tiny_parts.TEXT_WIDTH, intermediate_size=64,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=llama_tokenizer.pad_token_id))
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(clip_tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
        bos_token_id=clip_tokenizer.bos_token_id, eos_token_id=clip_tokenizer.eos_token_id,
        pad_token_id=clip_tokenizer.pad_token_id))
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=2, patch_size_t=1, guidance_embeds=True,
        text_embed_dim=_tiny_parts.TEXT_WIDTH, pooled_projection_dim=16, rope_axes_dim=(2, 4, 4))
    vae = AutoencoderKLHunyuanVideo(
        latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4,
        spatial_compression_ratio=8, temporal_compression_ratio=4)
    HunyuanVideoPipeline(
        text_encoder=llama, tokenizer=llama_tokenizer, transformer=transformer, vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), text_encoder_2=clip, tokenizer_2=clip_tokenizer,
    ).save_pretrained(directory, safe_serialization=True)
