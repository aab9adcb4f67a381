"""Which family serves a model: read `_class_name` from its `model_index.json` and look it up.

Families are imported explicitly (one line each), like Pillow's `_plugins`; no entry points.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from pipelines import cogvideox, hunyuan, hunyuan15, lora, ltx, ltx2, memory, speed, tiny, wan
from pipelines.base import ModelFamily, VideoModel, pick_device_and_dtype
from video_endpoint import settings
from video_endpoint.errors import ModelLoadError

logger = logging.getLogger(__name__)

FAMILIES: tuple[ModelFamily, ...] = (ltx, wan, cogvideox, hunyuan, ltx2, hunyuan15)
BY_CLASS_NAME: dict[str, ModelFamily] = {name: family for family in FAMILIES for name in family.CLASS_NAMES}



def resolve_source(path: str | os.PathLike | None, model_id: str | None = None) -> tuple[str, str]:
    """Where to load from, and why: `path` if it holds a diffusers model, else `model_id` or
    $VIDEO_MODEL_ID (a Hub id, a local directory, or `tiny`), else the default Hub id."""
    if path and (Path(path) / "model_index.json").is_file():
        return str(path), f"{path} holds model_index.json"
    where = f"{path or '(no path)'} holds no model_index.json"
    if model_id:
        named_by = "the model_id argument"
    else:
        model_id = settings.read("VIDEO_MODEL_ID")
        named_by = "VIDEO_MODEL_ID" if settings.is_set("VIDEO_MODEL_ID") else "VIDEO_MODEL_ID unset, the default"
    model_id = model_id.strip()
    if model_id in tiny.BUILDERS:
        return str(tiny.ensure(model_id=model_id)), f"{where}; {named_by}={model_id} (random weights)"
    if _looks_like_path(model_id) and not Path(model_id).is_dir():  # not a Hub id: never asked of the Hub
        raise ModelLoadError(f"no model directory {model_id} ({where}; {named_by}); a Hub id is <org>/<name>")
    return model_id, f"{where}; {named_by}={model_id}"


def _looks_like_path(model_id: str) -> bool:
    """A Hub id is `name` or `org/name`; anything else with a slash (or a leading dot or ~) is a path."""
    return model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1 or "\\" in model_id


def family_for(source: str, why: str) -> tuple[ModelFamily, str]:
    try:
        config = DiffusionPipeline.load_config(source)
    except Exception as exc:  # any failure to find the model: say exactly what was looked for
        raise ModelLoadError(f"cannot read model_index.json of model '{source}' ({why}): {exc}") from exc
    class_name = config.get("_class_name", "")
    forced = settings.read("VIDEO_MODEL_FAMILY")
    if forced:
        by_name = {family.FAMILY: family for family in FAMILIES}
        if forced not in by_name:
            raise ModelLoadError(f"VIDEO_MODEL_FAMILY={forced} names no family; known: {', '.join(by_name)}")
        return by_name[forced], class_name
    family = BY_CLASS_NAME.get(class_name)
    if family is None:
        raise ModelLoadError(
            f"model '{source}' is a {class_name or 'pipeline without _class_name'}, which this "
            f"handler does not serve; supported: {', '.join(sorted(BY_CLASS_NAME))}")
    return family, class_name


def load_model(path: str | os.PathLike | None, model_id: str | None = None) -> VideoModel:
    """Load the model once (the handler's start-up)."""
    source, why = resolve_source(path, model_id)
    family, class_name = family_for(source, why)
    device, dtype = pick_device_and_dtype()
    try:
        speed_settings = speed.SpeedSettings.from_env(device)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    # offloaded weights stay in CPU memory; the offload hooks move each model to the GPU to run
    load_device = torch.device("cpu") if speed_settings.cpu_offload else device
    logger.info("loading %s (%s, %s) on %s as %s: %s", source, family.FAMILY, class_name, load_device, dtype, why)
    try:
        pipelines = family.load(source, class_name, load_device, dtype)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {family.FAMILY} model '{source}' ({why}): {exc}") from exc
    try:  # before compilation: loading an adapter adds peft layers for a moment
        local_dir = source if Path(source).is_dir() else None
        adapters = lora.load(pipelines.any, lora.available(local_dir, settings.read("VIDEO_LORAS")))
    except lora.LoraLoadError as exc:
        raise ModelLoadError(str(exc)) from exc.__cause__
    applied = speed.apply(pipelines, speed_settings)
    logger.info("speed settings: %s", ", ".join(applied) or "none")
    return VideoModel(family, pipelines, source, device, dtype, speed_settings,
                      random_weights=Path(source, tiny.MARKER).is_file(), speed_applied=applied,
                      vae_tiling=memory.VaeTiling(mode=speed_settings.vae_tiling), loras=adapters)
