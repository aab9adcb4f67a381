"""Parts the tiny random-weight pipelines share: a T5-style tokenizer trained here on a built-in
corpus (no download), and tiny text encoders of the real classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizerFast,
    Qwen2TokenizerFast,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

CORPUS = """
a cyberpunk street in rain, neon lights reflecting on wet asphalt
cinematic drone shot of a futuristic city at sunset, glass towers and flying cars
slow zoom in, volumetric fog, soft light through the trees of a quiet forest
waves crashing on the shore, moving water, foam and spray, golden hour
slow pan over a mars landscape, red dust, rocks and a distant rover
a cat walking across a wooden table, shallow depth of field, warm colours
timelapse of clouds moving over snowy mountains, blue sky, dramatic shadows
a person dancing in a studio, colourful lights, smooth camera motion
close up of a flower blooming, macro lens, dew drops, morning sun
an old train crossing a bridge in the countryside, steam and green hills
underwater coral reef with fish swimming, sunlight rays, gentle current
blurry, low quality, distorted, watermark, text, jittery, static, worst quality
""".strip().splitlines()

TEXT_WIDTH = 32  # hidden size of every tiny text encoder


def save(pipe: Any, directory: Path) -> None:
    """Saved as a checkpoint is: safetensors only (the loading code refuses pickles)."""
    pipe.save_pretrained(directory, safe_serialization=True)


def name_processor(directory: Path, component: str, processor: str, tokenizer: Any = None) -> None:
    """`model_index.json` of the saved checkpoint names `component` the multimodal processor class
    the released checkpoints name, its folder holding the tokenizer files (written here when given):
    the loading code reads only the tokenizer of such a processor (a full one needs torchvision)."""
    if tokenizer is not None:
        tokenizer.save_pretrained(directory / component)
    index_path = directory / "model_index.json"
    index = json.loads(index_path.read_text())
    index[component] = ["transformers", processor]
    index_path.write_text(json.dumps(index, indent=2) + "\n")


def t5_tokenizer(vocab_size: int = 200) -> T5TokenizerFast:
    """A T5-style (Unigram, Metaspace, `</s>`-terminated) tokenizer trained on `CORPUS`."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, unk_token="<unk>",
                                      special_tokens=["<pad>", "</s>", "<unk>"])
    tokenizer.train_from_iterator(CORPUS, trainer)
    eos = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)])
    return T5TokenizerFast(tokenizer_object=tokenizer, extra_ids=0, model_max_length=128)


def t5_config(vocab_size: int) -> dict:
    return dict(vocab_size=vocab_size, d_model=TEXT_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                relative_attention_num_buckets=8)


def t5_encoder(tokenizer: T5TokenizerFast) -> T5EncoderModel:
    return T5EncoderModel(T5Config(**t5_config(len(tokenizer))))


# CLIP's pre-tokenizer split (from its tokenizer.json); transformers' CLIPTokenizerFast refuses a
# tokenizer whose pre-tokenizer is not this Split followed by ByteLevel.
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def clip_tokenizer(special_tokens: list[str], vocab_size: int = 300) -> Tokenizer:
    """A CLIP-style tokenizer (its split, byte-level BPE) trained on `CORPUS`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def clip_text_encoder(width: int = 16) -> tuple[CLIPTextModel, CLIPTokenizerFast]:
    """A tiny CLIP text encoder (77 positions, pooled output of `width`) and its tokenizer: the second
    text encoder of HunyuanVideo and Kandinsky 5."""
    tokenizer = CLIPTokenizerFast(
        tokenizer_object=clip_tokenizer(["<|startoftext|>", "<|endoftext|>"]),
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
        pad_token="<|endoftext|>", model_max_length=77)
    encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=width,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    return encoder, tokenizer


# Llama 3's pre-tokenizer split (from its tokenizer.json): with a vocabulary that covers a text,
# a BPE trained here splits it into as many tokens as Llama 3's own tokenizer does.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def llama3_tokenizer(special_tokens: list[str], texts: list[str], bos_token: str) -> Tokenizer:
    """A Llama-3-style tokenizer (its split, byte-level BPE, `bos_token` first) trained on `CORPUS`
    and `texts` with a vocabulary large enough to hold every word of `texts` whole, so prompt
    templates tokenize to the same lengths as with the real tokenizer."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS + texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos_token} $A", special_tokens=[(bos_token, tokenizer.token_to_id(bos_token))])
    return tokenizer


# Qwen2.5's chat template (ChatML), as the real tokenizer carries it
_CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
           "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def qwen_tokenizer(texts: list[str]) -> Qwen2TokenizerFast:
    """Qwen2's split and byte-level BPE with its special tokens and chat template, trained so that
    every word of `texts` (a pipeline's prompt template) is one token: the template then tokenizes
    to as many tokens as with the real tokenizer, where the pipelines crop it."""
    tokenizer = llama3_tokenizer(_QWEN_SPECIAL, texts, "<|endoftext|>")
    tokenizer.post_processor = None  # Qwen adds no BOS
    qwen = Qwen2TokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              unk_token=None)
    qwen.chat_template = _CHATML
    return qwen
