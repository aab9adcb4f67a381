"""Formats by name, like Pillow's `_plugins` list: adding a format is one module in `encoders/`
(see `encoders.base.OutputFormat`) plus its name in PLUGINS. Its options, its name in the
request's `outputs`, the CLI's file extension and README's API table follow from the module."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from encoders.base import OutputFormat

PLUGINS = ("gif", "webm", "mp4", "zip", "wav", "thumbnail", "spritesheet")


def _load(name: str) -> OutputFormat:
    module = importlib.import_module(f"encoders.{name}")
    if not isinstance(module, OutputFormat):
        missing = [member for member in vars(OutputFormat)
                   if not member.startswith("_") and not hasattr(module, member)]
        raise ImportError(f"encoders/{name}.py is not an output format: it lacks {', '.join(missing)}")
    return module


FORMATS: dict[str, OutputFormat] = {plugin.NAME: plugin for plugin in map(_load, PLUGINS)}

if TYPE_CHECKING:  # the type checker holds the built-in formats to the contract as well
    from encoders import gif, mp4, spritesheet, thumbnail, wav, webm, zip

    _BUILT_IN: tuple[OutputFormat, ...] = (gif, webm, mp4, zip, wav, thumbnail, spritesheet)


def get(name: str) -> OutputFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown output format {name!r}; supported: {', '.join(FORMATS)}") from None
