"""Formats by name. Adding a format is one module in `encoders/` plus one entry here
(like Pillow's `_plugins` list: explicit imports, no entry points)."""

from __future__ import annotations

from types import ModuleType

from encoders import gif, mp4, webm
from encoders import zip as zip_format

FORMATS: dict[str, ModuleType] = {module.NAME: module for module in (gif, webm, mp4, zip_format)}


def get(name: str) -> ModuleType:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown output format {name!r}; supported: {', '.join(FORMATS)}") from None
