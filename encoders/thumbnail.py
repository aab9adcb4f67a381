"""Thumbnail: the clip's first frame as one WebP still (what a player shows before it plays; the
OpenAI Videos API's `thumbnail` variant). Pillow writes it."""

from __future__ import annotations

import io

from PIL import Image

from encoders.base import Clip, FormatOptions

NAME, MIME, EXT = "thumbnail", "image/webp", ".webp"
MAX_FPS = 120  # a still: the rate is not used
NEEDS_AUDIO = False
STREAMS = False
ENCODE_COST = 0.05  # one frame
QUALITY = 85  # WebP's lossy quality: a preview, a twentieth of the PNG's size


class Options(FormatOptions):
    """`"thumbnail": {}` (an `fps` is accepted and unused, as every format's)."""


def encode(clip: Clip, options: Options) -> bytes:
    clip.settled()
    buffer = io.BytesIO()
    Image.fromarray(clip.frames[0]).save(buffer, format="WEBP", quality=QUALITY, method=4)
    return buffer.getvalue()
