"""Which family serves a model: read `_class_name` from its `model_index.json` and look it up.

Families are imported explicitly (one line each), like Pillow's `_plugins`; no entry points.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from packaging.version import Version

from pipelines import cogvideox, hunyuan, hunyuan15, kandinsky5, kandinsky6, lora, ltx, ltx2, memory, speed, tiny, wan
from pipelines.base import ModelFamily, SpeedSettings, quiet_library_noise
from pipelines.errors import ModelLoadError
from pipelines.model import VideoModel

logger = logging.getLogger(__name__)

FAMILIES: tuple[ModelFamily, ...] = (ltx, wan, cogvideox, hunyuan, ltx2, hunyuan15, kandinsky5, kandinsky6)
BY_CLASS_NAME: dict[str, ModelFamily] = {name: family for family in FAMILIES for name in family.CLASS_NAMES}



def family_for(source: str, why: str, forced: str = "") -> tuple[ModelFamily, str]:
    """The family serving `source` (`why`: where it came from, for messages); `forced` names a
    family for a checkpoint whose `_class_name` is not listed."""
    try:
        config = DiffusionPipeline.load_config(source)
    except Exception as exc:  # any failure to find the model: say exactly what was looked for
        raise ModelLoadError(f"cannot read model_index.json of model '{source}' ({why}): {exc}") from exc
    class_name = config.get("_class_name", "")
    if forced:
        by_name = {family.FAMILY: family for family in FAMILIES}
        if forced not in by_name:
            raise ModelLoadError(f"no family is named {forced!r}; known: {', '.join(by_name)}")
        return by_name[forced], class_name
    family = BY_CLASS_NAME.get(class_name)
    if family is None:
        raise ModelLoadError(
            f"model '{source}' is a {class_name or 'pipeline without _class_name'}, which this "
            f"handler does not serve; supported: {', '.join(sorted(BY_CLASS_NAME))}")
    return family, class_name


def check_libraries(family: ModelFamily, source: str) -> None:
    """Stops start-up in one line when the installed libraries are older than the checkpoint needs."""
    needed_versions = family.needs(DiffusionPipeline.load_config(source))
    older = {library: (needed, importlib.metadata.version(library)) for library, needed in needed_versions.items()
             if Version(importlib.metadata.version(library)) < Version(needed)}
    if older:
        needs = ", ".join(f"{library} >= {needed} (installed: {installed})"
                          for library, (needed, installed) in older.items())
        raise ModelLoadError(
            f"model '{source}' is a {family.FAMILY} checkpoint that needs {needs}: the current library generation "
            "(requirements-current.txt). Lay the repository out with `bash scripts/hub_repo.sh --container hf-serve "
            "DIR` and serve it on hf-serve 0.2, or run `GENERATION=current bash scripts/setup.sh` locally")


def load_model(source: str, why: str, device: torch.device, dtype: torch.dtype, speed_settings: SpeedSettings,
               forced_family: str = "", lora_sources: str = "") -> VideoModel:
    """Load the model once (the server's start-up): `source` is a directory or a Hub id, `why`
    says where it came from (for messages), `lora_sources` is "name=<Hub id or path>,..."."""
    family, class_name = family_for(source, why, forced_family)
    check_libraries(family, source)
    quiet_library_noise()
    # offloaded weights stay in CPU memory; the offload hooks move each model to the GPU to run
    load_device = torch.device("cpu") if speed_settings.cpu_offload else device
    logger.info("loading %s (%s, %s) on %s as %s: %s", source, family.FAMILY, class_name, load_device, dtype, why)
    try:
        pipelines = family.load(source, class_name, load_device, dtype)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {family.FAMILY} model '{source}' ({why}): {exc}") from exc
    try:  # before compilation: loading an adapter adds peft layers for a moment
        local_dir = source if Path(source).is_dir() else None
        adapters = lora.load(pipelines.any, lora.available(local_dir, lora_sources))
    except lora.LoraLoadError as exc:
        raise ModelLoadError(str(exc)) from exc.__cause__
    applied = speed.apply(pipelines, speed_settings)
    logger.info("speed settings: %s", ", ".join(applied) or "none")
    return VideoModel(family, pipelines, source, device, dtype, speed_settings,
                      random_weights=Path(source, tiny.MARKER).is_file(), speed_applied=applied,
                      vae_tiling=memory.VaeTiling(mode=speed_settings.vae_tiling), loras=adapters)
