"""Animated GIF: one palette for the whole clip, loops forever, exact playback length.

GIF stores frame delays in 1/100 s, so 12 fps cannot be one constant delay: the delays are
distributed (8, 8, 9, 8, 8, 9, ... cs) so that they add up to num_frames / fps. Browsers play
delays under 2 cs as 10 cs, so GIF refuses more than 50 fps rather than play at the wrong speed.

Colours: one palette for the clip (octree + k-means), each pixel mapped to its nearest entry, no
dithering (dither noise defeats GIF's LZW compression: bigger files; see benchmarks/encoders.py).

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
MAX_FPS = 50  # GIF stores delays in 1/100 s, and browsers play 2 cs (50 fps) at the fastest
NEEDS_AUDIO = False
_COLOURS = 256
_PALETTE_SAMPLE_FRAMES = 8  # frames the palette is learnt from (evenly spaced, half resolution)
_KMEANS_SAMPLES, _KMEANS_ROUNDS = 20_000, 4
_KEY_BITS = 7  # colours are matched to the palette at 7 bits per channel (2M cells)
_MAX_EXACT_CELLS = 1 << 17  # more used cells than this (noise): match at 6 bits instead


class Options(FormatOptions):
    """`"gif": {"fps": int}`."""


def frame_delays_cs(num_frames: int, fps: int) -> list[int]:
    """Per-frame delays in centiseconds whose running sum tracks frame_index * 100 / fps."""
    ends = [round((i + 1) * 100 / fps) for i in range(num_frames)]
    return [end - start for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def clip_palette(frames: np.ndarray, seed: int = 0) -> np.ndarray:
    """One palette for the whole clip, `(256, 3)` uint8: Pillow's fast octree on a sample of
    frames, refined by a few k-means rounds (octree alone leaves ~2 dB on the table)."""
    step = max(1, len(frames) // _PALETTE_SAMPLE_FRAMES)
    sample = np.ascontiguousarray(frames[::step, ::2, ::2])
    octree = Image.fromarray(sample.reshape(-1, sample.shape[2], 3)).quantize(
        _COLOURS, method=Image.Quantize.FASTOCTREE)
    centres = np.array((octree.getpalette() or [])[: 3 * _COLOURS], np.float32).reshape(-1, 3)
    pixels = sample.reshape(-1, 3)
    rng = np.random.default_rng(seed)  # fixed: the same clip always gets the same palette
    pixels = pixels[rng.choice(len(pixels), min(_KMEANS_SAMPLES, len(pixels)), replace=False)]
    pixels = pixels.astype(np.float32)
    for _ in range(_KMEANS_ROUNDS):
        nearest = _nearest(pixels, centres)
        counts = np.bincount(nearest, minlength=len(centres))
        used = counts > 0
        for channel in range(3):
            sums = np.bincount(nearest, weights=pixels[:, channel], minlength=len(centres))
            centres[used, channel] = sums[used] / counts[used]
    return np.clip(np.round(centres), 0, 255).astype(np.uint8)


def _nearest(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette entry for each colour (squared RGB distance), in chunks."""
    palette = palette.astype(np.float32)
    norms = (palette * palette).sum(1)
    out = np.empty(len(colours), np.intp)
    for start in range(0, len(colours), 16_384):
        block = colours[start:start + 16_384].astype(np.float32)
        out[start:start + 16_384] = (norms[None] - 2 * block @ palette.T).argmin(1)
    return out


def _colour_keys(frame: np.ndarray) -> np.ndarray:
    q = (frame >> (8 - _KEY_BITS)).astype(np.uint32)
    return (q[..., 0] << (2 * _KEY_BITS)) | (q[..., 1] << _KEY_BITS) | q[..., 2]


def _cell_centres(cells: np.ndarray, bits: int) -> np.ndarray:
    """RGB centres of colour cells keyed like `_colour_keys` at `bits` per channel."""
    mask, size = (1 << bits) - 1, 1 << (8 - bits)
    rgb = np.stack([cells >> (2 * bits), (cells >> bits) & mask, cells & mask], -1)
    return rgb.astype(np.float32) * size + (size - 1) / 2


def _palette_lookup(keys: list[np.ndarray], palette: np.ndarray) -> np.ndarray:
    """Key -> palette index, computed exactly for the colour cells the clip actually uses.

    Generated video uses a few ten thousand cells; noise (e.g. a random-weight model) can use
    all two million, and then the match is made at 6 bits per channel (8x fewer cells).
    """
    used = np.zeros(1 << (3 * _KEY_BITS), bool)
    for frame_keys in keys:
        used[frame_keys.ravel()] = True
    cells = np.flatnonzero(used).astype(np.uint32)
    if len(cells) <= _MAX_EXACT_CELLS:
        lookup = np.zeros(1 << (3 * _KEY_BITS), np.uint8)
        lookup[cells] = _nearest(_cell_centres(cells, _KEY_BITS), palette)
        return lookup
    coarse_bits = _KEY_BITS - 1
    coarse = _nearest(_cell_centres(np.arange(1 << (3 * coarse_bits), dtype=np.uint32), coarse_bits), palette)
    keys_7 = np.arange(1 << (3 * _KEY_BITS), dtype=np.uint32)
    keys_6 = (((keys_7 >> (2 * _KEY_BITS + 1)) << (2 * coarse_bits))
              | (((keys_7 >> (_KEY_BITS + 1)) & ((1 << coarse_bits) - 1)) << coarse_bits)
              | ((keys_7 >> 1) & ((1 << coarse_bits) - 1)))
    return coarse.astype(np.uint8)[keys_6]


def _global_header(width: int, height: int, palette: bytes) -> bytes:
    palette = palette.ljust(3 * _COLOURS, b"\0")[: 3 * _COLOURS]
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
    palette = clip_palette(clip.frames)
    keys = [_colour_keys(frame) for frame in clip.frames]
    lookup = _palette_lookup(keys, palette)
    delays = frame_delays_cs(clip.num_frames, clip.fps)
    chunks = [_global_header(clip.width, clip.height, palette.tobytes())]
    previous = None
    for frame_keys, delay in zip(keys, delays, strict=True):
        indices = lookup[frame_keys]
        left, top, right, bottom = (
            (0, 0, clip.width, clip.height) if previous is None else _changed_box(previous, indices))
        # palette indices written as they are (no local colour table); disposal 1 = keep, so a
        # partial frame is drawn over the previous one
        part = Image.fromarray(np.ascontiguousarray(indices[top:bottom, left:right]))
        chunks += GifImagePlugin.getdata(part, (left, top), duration=delay * 10, disposal=1)
        previous = indices
    chunks.append(b";")
    return b"".join(chunks)
