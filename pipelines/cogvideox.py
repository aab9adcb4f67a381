"""CogVideoX (THUDM/Zhipu): `CogVideoXPipeline` and `CogVideoXImageToVideoPipeline`.

Text-to-video and image-to-video are separate checkpoints (the image-to-video transformer takes
the image latents as extra input channels), so each loads one mode and the other is `unsupported`.
Frame counts are 4k+1 (the VAE's temporal ratio; CogVideoX 1.5's transformer pads its latent
frames itself); sizes a multiple of 16. A transformer with *learned* positional embeddings
(CogVideoX-5b-I2V) only generates at its training size (720x480): other sizes are refused with
that size named, instead of failing inside the model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
)

from errors import InvalidRequest
from pipelines import _tiny_parts
from pipelines.base import GenerationJob, LoadedPipelines, StepCallback, check_size_multiple, run_pipeline

FAMILY = "cogvideox"
CLASS_NAMES = ("CogVideoXPipeline", "CogVideoXImageToVideoPipeline")
_MAX_TEXT_TOKENS = 226  # the pipelines' max_sequence_length; the 2B transformer embeds that many


def load(source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
    cls = CogVideoXImageToVideoPipeline if class_name == "CogVideoXImageToVideoPipeline" else CogVideoXPipeline
    pipe = cls.from_pretrained(source, torch_dtype=dtype, device_map=device.type, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    if cls is CogVideoXImageToVideoPipeline:
        return LoadedPipelines(t2v=None, i2v=pipe, class_name=class_name)
    return LoadedPipelines(t2v=pipe, i2v=None, class_name=class_name)


def check_request(pipelines: LoadedPipelines, request) -> list[str]:
    pipe = pipelines.any
    config = pipe.transformer.config
    check_size_multiple(request, pipe.vae_scale_factor_spatial * config.patch_size, "CogVideoX")
    if config.use_learned_positional_embeddings:
        scale = pipe.vae_scale_factor_spatial
        size = (config.sample_height * scale, config.sample_width * scale)
        if (request.height, request.width) != size:
            raise InvalidRequest(f"this CogVideoX checkpoint generates only at height {size[0]}, width {size[1]} "
                                 "(learned positional embeddings)", field="height")
    return []


def temporal_ratio(pipelines: LoadedPipelines) -> int:
    """Valid frame counts are k * ratio + 1."""
    return pipelines.any.vae_scale_factor_temporal


def generate(pipelines: LoadedPipelines, job: GenerationJob, on_step: StepCallback) -> torch.Tensor:
    return run_pipeline(pipelines.for_job(job), job, on_step, max_sequence_length=_MAX_TEXT_TOKENS)


# ------------------------------------------------------------------------------------------------
# Tiny random-weight checkpoints: a 2B-shaped text-to-video one, a 5B-I2V-shaped image-to-video one.

def _tiny_parts_for(transformer: CogVideoXTransformer3DModel) -> dict:
    tokenizer = _tiny_parts.t5_tokenizer()
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2,
        temporal_compression_ratio=4)
    return {"tokenizer": tokenizer, "text_encoder": _tiny_parts.t5_encoder(tokenizer), "vae": vae,
            "transformer": transformer, "scheduler": CogVideoXDDIMScheduler()}


def _tiny_transformer(**shape) -> CogVideoXTransformer3DModel:
    return CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, out_channels=4, time_embed_dim=4,
        text_embed_dim=_tiny_parts.TEXT_WIDTH, num_layers=1, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=_MAX_TEXT_TOKENS, **shape)


def build_tiny_t2v(directory: Path) -> None:
    transformer = _tiny_transformer(in_channels=4, sample_height=8, sample_width=12)
    CogVideoXPipeline(**_tiny_parts_for(transformer)).save_pretrained(directory, safe_serialization=True)


def build_tiny_i2v(directory: Path) -> None:
    """Learned positional embeddings for a 64x96 training size, like CogVideoX-5b-I2V's 480x720."""
    transformer = _tiny_transformer(in_channels=8, sample_height=8, sample_width=12,
                                    use_learned_positional_embeddings=True, use_rotary_positional_embeddings=True)
    CogVideoXImageToVideoPipeline(**_tiny_parts_for(transformer)).save_pretrained(directory, safe_serialization=True)
