"""Tiny random-weight pipelines, built offline and saved like real checkpoints.

They exist so that the demo and the tests run the real loading and generation code without
downloading weights. Their output is noise. Built once per cache directory (a fraction of a
second) and then loaded with `from_pretrained` exactly as a real model directory is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from pipelines import ltx

TINY_ID = "tiny"
CACHE_ENV = "VIDEO_TINY_MODEL_DIR"
MARKER = "RANDOM_WEIGHTS.txt"  # written beside model_index.json: diagnostics then say "noise"
_VERSION = 1  # bump when the tiny model changes, so stale caches are rebuilt
_SEED = 0
_CORPUS = """
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


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "video-endpoint" / f"tiny-ltx-v{_VERSION}"


def train_tokenizer(vocab_size: int = 200) -> T5Tokenizer:
    """A T5-style (Unigram, Metaspace, `</s>`-terminated) tokenizer trained on a built-in corpus."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, unk_token="<unk>",
                                      special_tokens=["<pad>", "</s>", "<unk>"])
    tokenizer.train_from_iterator(_CORPUS, trainer)
    eos = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos)])
    return T5Tokenizer(tokenizer_object=tokenizer, extra_ids=0, model_max_length=128)


def build(directory: Path) -> Path:
    """Build the tiny LTX-Video pipeline into `directory` (replaced atomically)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(_SEED)
    tokenizer = train_tokenizer()
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8))
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=directory.parent))
    try:
        ltx.build_tiny(staging, tokenizer, text_encoder)
        (staging / MARKER).write_text(
            "Tiny random-weight test pipeline built by pipelines/tiny.py: its output is noise.\n")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def ensure(directory: Path | None = None) -> Path:
    """The tiny model's directory, built first if it is not there yet."""
    directory = Path(directory) if directory else default_cache_dir()
    if not (directory / "model_index.json").is_file():
        build(directory)
    return directory
