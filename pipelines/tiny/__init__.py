"""Tiny random-weight pipelines, built offline and saved like real checkpoints.

They exist so that the demo and the tests run the real loading and generation code without
downloading weights. Their output is noise. Built once per cache directory (a fraction of a
second) and then loaded with `from_pretrained` exactly as a real model directory is. The builders
(one module per family beside this file) are imported only when a tiny model is built: serving a
real model never imports them.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

TINY_ID = "tiny"
MARKER = "RANDOM_WEIGHTS.txt"  # written beside model_index.json: diagnostics then say "noise"
_VERSION = 4  # bump when a tiny model changes, so stale caches are rebuilt
_SEED = 0
# model id -> "module:function" of its builder in this package; "tiny" is LTX-Video, the default family
BUILDERS = {
    "tiny": "ltx:build_tiny",
    "tiny-wan": "wan:build_tiny_t2v",
    "tiny-wan-i2v": "wan:build_tiny_i2v",
    "tiny-wan-flf2v": "wan:build_tiny_flf2v",
    "tiny-wan-ti2v": "wan:build_tiny_ti2v",
    "tiny-cogvideox": "cogvideox:build_tiny_t2v",
    "tiny-cogvideox-i2v": "cogvideox:build_tiny_i2v",
    "tiny-hunyuan": "hunyuan:build_tiny",
    "tiny-hunyuan-i2v": "hunyuan:build_tiny_i2v",
    "tiny-hunyuan-i2v-33ch": "hunyuan:build_tiny_i2v_33ch",
    "tiny-ltx2": "ltx2:build_tiny",
    "tiny-ltx25": "ltx2:build_tiny_25",
    "tiny-hunyuan15": "hunyuan15:build_tiny_t2v",
    "tiny-hunyuan15-i2v": "hunyuan15:build_tiny_i2v",
    "tiny-kandinsky5": "kandinsky5:build_tiny_t2v",
    "tiny-kandinsky5-i2v": "kandinsky5:build_tiny_i2v",
    "tiny-kandinsky6": "kandinsky6:build_tiny",
    "tiny-kandinsky6-distilled": "kandinsky6:build_tiny_distilled",
}
# model id -> the oldest diffusers its classes are in (the others: both library generations)
NEEDS_DIFFUSERS = {"tiny-ltx25": "0.40", "tiny-kandinsky6": "0.42", "tiny-kandinsky6-distilled": "0.42"}


def buildable(model_id: str) -> bool:
    """Whether the installed diffusers has the classes of tiny model `model_id`."""
    import diffusers
    from packaging.version import Version

    return Version(diffusers.__version__) >= Version(NEEDS_DIFFUSERS.get(model_id, "0"))


def _builder(model_id: str) -> Callable[[Path], None]:
    module, function = BUILDERS[model_id].split(":")
    return getattr(importlib.import_module(f"pipelines.tiny.{module}"), function)


def default_cache_dir(model_id: str = TINY_ID, configured: str = "", cache_home: str = "") -> Path:
    """Where `model_id` is cached: `configured` (for `tiny`; other tiny ids in folders beside it),
    else `<cache_home or ~/.cache>/video-endpoint/`. The application passes its settings' values."""
    if configured:
        root = Path(configured)
        return root if model_id == TINY_ID else root.with_name(f"{root.name}-{model_id}")
    base = Path(cache_home) if cache_home else Path.home() / ".cache"
    return base / "video-endpoint" / f"{model_id}-v{_VERSION}"


def build(directory: Path, model_id: str = TINY_ID) -> Path:
    """Build the tiny pipeline `model_id` into `directory` (replaced atomically)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=directory.parent))
    try:
        torch.manual_seed(_SEED)
        _builder(model_id)(staging)
        (staging / MARKER).write_text(
            "Tiny random-weight test pipeline built by pipelines/tiny.py: its output is noise.\n")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def ensure(directory: Path, model_id: str = TINY_ID) -> Path:
    """The tiny model's directory, built first if it is not there yet."""
    directory = Path(directory)
    if not (directory / "model_index.json").is_file():
        build(directory, model_id)
    return directory
