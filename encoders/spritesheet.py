"""Sprite sheet: frames spread evenly over the clip, left to right then top to bottom, in one JPEG
(a scrubbing preview; the OpenAI Videos API's `spritesheet` variant). At most `MAX_SPRITES`
frames, each scaled to at most `MAX_SPRITE_WIDTH` pixels wide; the grid is as square as the count
allows. Pillow writes it."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from encoders.base import Clip, FormatOptions

NAME, MIME, EXT = "spritesheet", "image/jpeg", ".jpg"
MAX_FPS = 120  # stills: the rate is not used
NEEDS_AUDIO = False
STREAMS = False
ENCODE_COST = 0.1  # a few frames
MAX_SPRITES = 16
MAX_SPRITE_WIDTH = 256
QUALITY = 85


class Options(FormatOptions):
    """`"spritesheet": {}` (an `fps` is accepted and unused, as every format's)."""


def sprite_indices(num_frames: int) -> list[int]:
    """The frames shown: all of a short clip, else `MAX_SPRITES` evenly spaced, first and last included."""
    if num_frames <= MAX_SPRITES:
        return list(range(num_frames))
    return [round(i * (num_frames - 1) / (MAX_SPRITES - 1)) for i in range(MAX_SPRITES)]


def grid(count: int) -> tuple[int, int]:
    """(columns, rows) for `count` sprites."""
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def encode(clip: Clip, options: Options) -> bytes:
    clip.settled()
    indices = sprite_indices(clip.num_frames)
    scale = min(1.0, MAX_SPRITE_WIDTH / clip.width)
    width, height = max(1, round(clip.width * scale)), max(1, round(clip.height * scale))
    columns, rows = grid(len(indices))
    sheet = Image.new("RGB", (columns * width, rows * height))
    for place, index in enumerate(indices):
        sprite = Image.fromarray(np.ascontiguousarray(clip.frames[index]))
        if scale < 1.0:
            sprite = sprite.resize((width, height), Image.Resampling.LANCZOS)
        sheet.paste(sprite, ((place % columns) * width, (place // columns) * height))
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=QUALITY)
    return buffer.getvalue()
