"""Animated GIF: one palette for the whole clip, loops forever, exact playback length.

GIF stores frame delays in 1/100 s, so 12 fps cannot be one constant delay: the delays are
distributed (8, 8, 9, 8, 8, 9, ... cs) so that they add up to num_frames / fps. Browsers play
delays under 2 cs as 10 cs, so GIF refuses more than 50 fps rather than play at the wrong speed.

The stream is written frame by frame with Pillow's GIF writer (`GifImagePlugin.getdata`), not
`Image.save(save_all=True)`, because the latter merges identical consecutive frames and the
API promises exactly `num_frames` frames.
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import GifImagePlugin, Image

from encoders.base import Clip, FormatOptions

NAME, MIME, EXT = "gif", "image/gif", ".gif"
MAX_FPS = 50
_PALETTE_SAMPLE_FRAMES = 8  # frames the clip palette is computed from (evenly spaced)


class Options(FormatOptions):
    """`"gif": {"fps": int}`."""


def frame_delays_cs(num_frames: int, fps: int) -> list[int]:
    """Per-frame delays in centiseconds whose running sum tracks frame_index * 100 / fps."""
    ends = [round((i + 1) * 100 / fps) for i in range(num_frames)]
    return [end - start for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def _clip_palette(frames: np.ndarray) -> Image.Image:
    """One 256-colour palette from a sample of frames (at half resolution: colours, not detail)."""
    step = max(1, len(frames) // _PALETTE_SAMPLE_FRAMES)
    sample = np.ascontiguousarray(frames[::step, ::2, ::2])
    sample = sample.reshape(-1, sample.shape[2], 3)  # the sampled frames stacked vertically
    return Image.fromarray(sample).quantize(256, method=Image.Quantize.FASTOCTREE)


def _global_header(width: int, height: int, palette: bytes) -> bytes:
    palette = palette.ljust(768, b"\0")[:768]
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0)
    loop_forever = b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", 0) + b"\0"
    return screen + palette + loop_forever


def _changed_box(previous: np.ndarray, current: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (left, top, right, bottom) of the pixels that differ; 1x1 when none do."""
    diff = previous != current
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    if rows.size == 0:
        return 0, 0, 1, 1  # still a frame of its own: the count and the timing stay exact
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def encode(clip: Clip, options: Options) -> bytes:
    palette = _clip_palette(clip.frames)
    delays = frame_delays_cs(clip.num_frames, clip.fps)
    chunks = [_global_header(clip.width, clip.height, bytes(palette.getpalette() or []))]
    previous = None
    for frame, delay in zip(clip.frames, delays, strict=True):
        indexed = Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE)
        pixels = np.asarray(indexed)
        left, top, right, bottom = (
            (0, 0, clip.width, clip.height) if previous is None else _changed_box(previous, pixels)
        )
        # disposal 1 = keep: a partial frame is drawn over the previous one
        part = indexed.crop((left, top, right, bottom))
        chunks += GifImagePlugin.getdata(part, (left, top), duration=delay * 10, disposal=1)
        previous = pixels
    chunks.append(b";")
    return b"".join(chunks)
