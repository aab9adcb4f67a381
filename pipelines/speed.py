"""The GPU fast path, switched on after loading: regional compilation of the transformer's
repeated blocks (with a warm-up request at start-up), an opt-in first-block step cache, and an
opt-in model CPU offload for small GPUs. bf16 weights and PyTorch's SDPA attention are already
the defaults of the loading code and of diffusers.

What is switched on comes in as `SpeedSettings` (the application reads them from its settings:
`VIDEO_COMPILE`, `VIDEO_WARMUP`, `VIDEO_STEP_CACHE`, `VIDEO_VAE_TILING`, `VIDEO_CPU_OFFLOAD`).
Compilation is `compile_repeated_blocks` on each repeated transformer block: compile's speed for
a fraction of its compile time. The warm-up's four short generations (`warmup_shapes`) leave a
graph compiled for the card's default size and one with dynamic sizes and batch, so no user
request recompiles whatever its prompt, seed, steps, guidance or size (tested on CPU). The
exceptions: a latent of a single token (e.g. 32x32, 1 frame on LTX), a size torch always
specializes, compiles once; before torch 2.11 each size outside the warm-up's compiles once (see
`sizes_compile_once_each`). The step cache trades quality for speed (docs/benchmarks.md).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

import torch

from pipelines.base import LoadedPipelines, SpeedSettings
from pipelines.errors import ModelLoadError

logger = logging.getLogger(__name__)


def transformers_of(pipelines: LoadedPipelines) -> list[Any]:
    """Each distinct denoising transformer (Wan 2.2 A14B has two), once."""
    found: dict[int, Any] = {}
    for pipe in pipelines.all:
        for name in ("transformer", "transformer_2"):
            module = getattr(pipe, name, None)
            if module is not None:
                found[id(module)] = module
    return list(found.values())


def step_cache_unsupported(transformer: Any) -> str | None:
    """Why diffusers' first-block cache cannot run `transformer`, or None. Its hook reads each
    repeated block's `hidden_states` argument by that name (diffusers 0.39 to 0.42), whatever the
    block calls it: a block without one (Kandinsky 5's `visual_embed`) fails on every request."""
    blocks = set(getattr(transformer, "_repeated_blocks", None) or ())
    for module in transformer.modules():
        name = type(module).__name__
        if name in blocks and "hidden_states" not in inspect.signature(type(module).forward).parameters:
            return (f"diffusers' first-block cache reads each block's hidden_states argument, and {name} of "
                    f"{type(transformer).__name__} has none")
    return None


def apply(pipelines: LoadedPipelines, switches: SpeedSettings) -> list[str]:
    """Switch on what `switches` ask for; returns what was applied, for logs and /health."""
    applied = []
    if switches.cpu_offload:
        pipelines.any.enable_model_cpu_offload()  # hooks sit on the shared modules: both modes use them
        applied.append("model CPU offload")
    for transformer in transformers_of(pipelines):
        name = type(transformer).__name__
        if switches.step_cache is not None:
            from diffusers import FirstBlockCacheConfig

            unsupported = step_cache_unsupported(transformer)
            if unsupported:
                raise ModelLoadError(f"VIDEO_STEP_CACHE cannot be used with this model: {unsupported}; unset it")
            transformer.enable_cache(FirstBlockCacheConfig(threshold=switches.step_cache))
            applied.append(f"first-block cache (threshold {switches.step_cache}) on {name}")
        if switches.compile:
            if getattr(transformer, "_repeated_blocks", None):
                share_attention_processors(transformer)
                # the step cache decides per step, outside torch.compile (a graph break): no fullgraph then
                transformer.compile_repeated_blocks(fullgraph=switches.step_cache is None)
                applied.append(f"regional compilation of {name} ({', '.join(transformer._repeated_blocks)})")
                if sizes_compile_once_each():
                    applied.append(f"torch {torch.__version__} compiles each new size once, on its first request")
            else:
                logger.info("%s declares no repeated blocks: not compiled", name)
    return applied


@dataclass(frozen=True)
class WarmupShape:
    """One warm-up generation of `WARMUP_STEPS` steps: what differs from a default request (None:
    the default). The application makes its own request of it and runs it like any other, so the
    planning a user request goes through (the family's frame counts, sizes, defaults) shapes it too."""

    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    guidance_scale: float | None = None
    """1.0: without classifier-free guidance (a batch of 1)"""
    with_image: bool = False
    """image-to-video: for a checkpoint without text-to-video"""


WARMUP_STEPS = 2


def warmup_shapes(modes: list[str]) -> list[WarmupShape]:
    """Short generations so that no user request compiles: the card's default (the shapes most
    requests have, compiled for exactly those), then a second size (torch recompiles with the sizes
    dynamic), then that size without guidance (classifier-free guidance doubles the transformer's
    batch: torch specializes a batch of 1), then the default size without guidance (torch 2.5
    compiled the batch of 1 for the second size only; newer torch compiles nothing here)."""
    image = "t2v" not in modes  # an image-to-video-only checkpoint needs an image
    return [WarmupShape(with_image=image), WarmupShape(256, 384, 16, with_image=image),
            WarmupShape(256, 384, 16, guidance_scale=1.0, with_image=image),
            WarmupShape(guidance_scale=1.0, with_image=image)]


# The oldest torch seen to compile every size after the warm-up with dynamic shapes: 2.13 in a CPU
# test that fails on any recompilation, 2.11 on an H200 (a size outside the warm-up answered its
# first request within 4% of its second, where a recompilation costs tens of seconds). torch 2.5
# (the stock Endpoint's) keeps sizes static, even with dynamic=True: each new size compiles once.
DYNAMIC_SIZES_SINCE = (2, 11)


def sizes_compile_once_each() -> bool:
    """True where torch compiles each new request size on its first use (see above)."""
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    return version < DYNAMIC_SIZES_SINCE


def share_attention_processors(transformer: Any) -> int:
    """Give every attention layer of one processor kind the same processor object; returns how
    many kinds were shared. Each block gets its own (stateless) processor at load, and torch 2.5's
    compiler guards on the processor's identity: every block of a regionally compiled transformer
    then compiled anew and, past the cache limit of 8, ran uncompiled. Processors that hold state
    of their own (their attributes differ) are left alone."""
    processors = transformer.attn_processors
    first_of_kind: dict[type, Any] = {}
    for processor in processors.values():
        first = first_of_kind.setdefault(type(processor), processor)
        if first is not processor and vars(first) != vars(processor):
            return 0
    transformer.set_attn_processor({name: first_of_kind[type(p)] for name, p in processors.items()})
    return len(first_of_kind)
