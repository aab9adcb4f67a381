"""Tiny random-weight Kandinsky 5.0 checkpoints: text-to-video and image-to-video are separate
checkpoints, as released (both transformers take image latents and a mask as extra channels; the
text-to-video pipeline fills them with zeros).

The real `tokenizer` component is a `Qwen2VLProcessor` whose tokenizer alone is used (the pipelines
pass `images=None, videos=None`), and whose video processor needs torchvision. The tiny checkpoint's
`model_index.json` names that class as the real one does, and its folder holds the Qwen2 tokenizer
files: what `pipelines/kandinsky5.py` loads from either."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo,
    FlowMatchEulerDiscreteScheduler,
    Kandinsky5I2VPipeline,
    Kandinsky5T2VPipeline,
    Kandinsky5Transformer3DModel,
)
from diffusers.models.transformers.transformer_kandinsky import Kandinsky5Modulation
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from pipelines.tiny import _parts

QWEN_WIDTH, CLIP_WIDTH, LATENT = 16, 16, 4
# Words of the prompt template that the tiny tokenizer learns in two pieces (each second piece after a
# newline, so it is learnt without a leading space). Every other word is one token, and the template
# before the user's prompt is then exactly the tokens the pipeline drops: 129 with diffusers 0.39's
# template, 128 once 0.40 spelt "promt" as "prompt" (one token fewer, as with the real tokenizer). The
# two typos and the two rare words are the least likely to be whole in a general vocabulary.
_TWO_PIECES = {"promt": "prom\nt", "scren": "scr\nen", "dynamism": "dynam\nism", "postprocessing": "post\nprocessing"}


def text_components(template: str) -> dict:
    """Qwen2.5-VL (with the tokenizer trained on `template`, the prompt template its pipeline wraps a
    prompt in) and CLIP: the text encoders of Kandinsky 5 and 6."""
    template = template.replace("{}", "")
    for word, pieces in _TWO_PIECES.items():
        template = template.replace(word, pieces)
    tokenizer = _parts.qwen_tokenizer([template])
    text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=QWEN_WIDTH, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, rope_theta=1000000.0,
                         max_position_embeddings=2048, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id,
                         rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}),
        vision_config=dict(depth=1, hidden_size=8, intermediate_size=16, num_heads=2, out_hidden_size=QWEN_WIDTH,
                           patch_size=2, spatial_merge_size=1, temporal_patch_size=1, window_size=4,
                           fullatt_block_indexes=[0]),
        vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    clip, clip_tokenizer = _parts.clip_text_encoder(CLIP_WIDTH)
    return dict(text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=clip, tokenizer_2=clip_tokenizer)


def hunyuan_vae() -> AutoencoderKLHunyuanVideo:
    """HunyuanVideo's VAE at toy widths, with its real ratios: 8x spatial, 4x temporal."""
    return AutoencoderKLHunyuanVideo(latent_channels=LATENT, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                                     norm_num_groups=4, spatial_compression_ratio=8, temporal_compression_ratio=4)


def _components(pipeline_class: type) -> dict:
    text = text_components(_prompt_template(pipeline_class))
    transformer = Kandinsky5Transformer3DModel(
        in_visual_dim=LATENT, out_visual_dim=LATENT, in_text_dim=QWEN_WIDTH, in_text_dim2=CLIP_WIDTH, time_dim=16,
        patch_size=(1, 2, 2), model_dim=16, ff_dim=32, num_text_blocks=1, num_visual_blocks=2, axes_dims=(2, 2, 4),
        visual_cond=True)  # as in the released T2V and I2V models: image latents and a mask as extra channels
    # adaLN-zero: from its zero start, text and time would change nothing (cast: mypy does not see the
    # class as an nn.Module)
    for module in cast(torch.nn.Module, transformer).modules():
        if isinstance(module, Kandinsky5Modulation):
            torch.nn.init.normal_(module.out_layer.weight, std=0.2)
    return dict(transformer=transformer, vae=hunyuan_vae(), scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
                **text)


def _prompt_template(pipeline_class: type) -> str:
    """The template the installed diffusers' pipeline wraps a prompt in (set in its __init__)."""
    probe = pipeline_class(transformer=None, vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None,
                           tokenizer_2=None, scheduler=None)
    return str(probe.prompt_template)


def save_with_processor(pipe: Any, directory: Path, processor: str = "Qwen2VLProcessor") -> None:
    """Saved with `model_index.json` naming the tokenizer the processor class the released
    checkpoints name, its folder holding the tokenizer files."""
    _parts.save(pipe, directory)
    _parts.name_processor(directory, "tokenizer", processor)


def build_tiny_t2v(directory: Path) -> None:
    save_with_processor(Kandinsky5T2VPipeline(**_components(Kandinsky5T2VPipeline)), directory)


def build_tiny_i2v(directory: Path) -> None:
    """The same shapes (the T2V pipeline sends zeros as the image channels); trained apart in the real ones."""
    save_with_processor(Kandinsky5I2VPipeline(**_components(Kandinsky5I2VPipeline)), directory)
