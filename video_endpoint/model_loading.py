"""Which model the endpoint serves, from the repository path, an explicit id or the settings,
and loading it with every setting a loader needs read here, once (`pipelines` reads none)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipelines import registry, tiny
from pipelines.base import pick_device_and_dtype
from pipelines.errors import ModelLoadError
from pipelines.model import VideoModel
from video_endpoint import settings


def resolve_source(path: str | os.PathLike | None, model_id: str | None = None,
                   environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Where to load from, and why: `path` if it holds a diffusers model, else `model_id` or
    $VIDEO_MODEL_ID (a Hub id, a local directory, or a tiny id), else the default Hub id."""
    if path and (Path(path) / "model_index.json").is_file():
        return str(path), f"{path} holds model_index.json"
    where = f"{path or '(no path)'} holds no model_index.json"
    if model_id:
        named_by = "the model_id argument"
    else:
        model_id = settings.read("VIDEO_MODEL_ID", environ)
        named_by = ("VIDEO_MODEL_ID" if settings.is_set("VIDEO_MODEL_ID", environ)
                    else "VIDEO_MODEL_ID unset, the default")
    model_id = model_id.strip()
    if model_id in tiny.BUILDERS:
        directory = tiny.ensure(settings.tiny_model_dir(model_id, environ), model_id)
        return str(directory), f"{where}; {named_by}={model_id} (random weights)"
    if _looks_like_path(model_id) and not Path(model_id).is_dir():  # not a Hub id: never asked of the Hub
        raise ModelLoadError(f"no model directory {model_id} ({where}; {named_by}); a Hub id is <org>/<name>")
    return model_id, f"{where}; {named_by}={model_id}"


def _looks_like_path(model_id: str) -> bool:
    """A Hub id is `name` or `org/name`; anything else with a slash (or a leading dot or ~) is a path."""
    return model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1 or "\\" in model_id


def load_model(path: str | os.PathLike | None, model_id: str | None = None,
               environ: Mapping[str, str] | None = None) -> VideoModel:
    """The served model, loaded once at start-up. Raises ModelLoadError naming what was looked for."""
    source, why = resolve_source(path, model_id, environ)
    device, dtype = pick_device_and_dtype()
    try:
        speed_settings = settings.speed_settings(device, environ)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    forced = settings.read("VIDEO_MODEL_FAMILY", environ)
    known = [family.FAMILY for family in registry.FAMILIES]
    if forced and forced not in known:
        raise ModelLoadError(f"VIDEO_MODEL_FAMILY={forced} names no family; known: {', '.join(known)}")
    return registry.load_model(source, why, device, dtype, speed_settings, forced_family=forced,
                               lora_sources=settings.read("VIDEO_LORAS", environ))
