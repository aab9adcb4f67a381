"""Animated GIF: one palette for the whole clip, loops forever, exact playback length.

GIF stores frame delays in 1/100 s, so 12 fps cannot be one constant delay: the delays are
distributed (8, 8, 9, 8, 8, 9, ... cs) so that they add up to num_frames / fps. Browsers play
delays under 2 cs as 10 cs, so GIF refuses more than 50 fps rather than play at the wrong speed.

Colours: one palette for the clip (octree + k-means), each pixel mapped to its nearest entry, no
dithering (dither noise defeats GIF's LZW compression: bigger files; see benchmarks/encoders.py).

The stream is written frame by frame with Pillow's GIF writer (`GifImagePlugin.getdata`), not
`Image.save(save_all=True)`, because the latter merges identical consecutive frames and the
API promises exactly `num_frames` frames.

Every core the clip is given works on it: the LZW streams, which are independent once each
frame's indices and changed box are known, in worker processes (Pillow's LZW holds the GIL),
batch by batch as the frames are matched, the indices read where they were written (a
`cores.SharedArray`); the matching itself in this process, on threads once
it has a share of 2 or more cores (8 cores in all; numpy releases the GIL). The bytes are the
same whatever the number of cores.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PIL import GifImagePlugin, Image

from encoders import cores
from encoders.base import Clip, FormatOptions

NAME, MIME, EXT = "gif", "image/gif", ".gif"
MAX_FPS = 50  # GIF stores delays in 1/100 s, and browsers play 2 cs (50 fps) at the fastest
NEEDS_AUDIO = False
STREAMS = False  # its palette is learnt from frames spread over the whole clip
ENCODE_COST = 1.0  # colour matching and LZW, about ZIP's work
_COLOURS = 256
_PALETTE_SAMPLE_FRAMES = 8  # frames the palette is learnt from (evenly spaced, half resolution)
_KMEANS_SAMPLES, _KMEANS_ROUNDS = 20_000, 4
_KEY_BITS = 7  # colours are matched to the palette at 7 bits per channel (2M cells)
_MAX_EXACT_CELLS = 1 << 17  # more used cells than this (noise): match at 6 bits instead
_BATCHES_PER_WORKER = 4  # a batch holds at most num_frames / (this * workers) frames
_SORT_AT_MOST = 1 << 14  # new colours of a frame found by sorting up to this many pixels
# colours matched per product: OpenBLAS runs products this small on the calling thread; larger
# ones wake its threads, which then spin for ~0.1 s, taking a core from the LZW workers
_NEAREST_CHUNK = 256
_LZW_COST = 4  # LZW (in the workers) takes ~4x the colour matching (here): the matching's share of the cores


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
    scaled = -2 * palette.T  # exact (a power of two): the same distances, one temporary fewer (3x faster)
    out = np.empty(len(colours), np.intp)
    for start in range(0, len(colours), _NEAREST_CHUNK):
        distances = colours[start:start + _NEAREST_CHUNK].astype(np.float32) @ scaled
        distances += norms
        out[start:start + _NEAREST_CHUNK] = distances.argmin(1)
    return out


def _colour_keys(frame: np.ndarray) -> np.ndarray:
    """Each pixel's colour cell: `_KEY_BITS` of red, green and blue packed in one uint32."""
    q = frame >> (8 - _KEY_BITS)
    keys = q[..., 0].astype(np.uint32)
    keys <<= _KEY_BITS  # in place: one array of keys, no temporaries (half the time)
    keys |= q[..., 1]
    keys <<= _KEY_BITS
    keys |= q[..., 2]
    return keys


def _cell_centres(cells: np.ndarray, bits: int) -> np.ndarray:
    """RGB centres of colour cells keyed like `_colour_keys` at `bits` per channel."""
    mask, size = (1 << bits) - 1, 1 << (8 - bits)
    rgb = np.stack([cells >> (2 * bits), (cells >> bits) & mask, cells & mask], -1)
    return rgb.astype(np.float32) * size + (size - 1) / 2


class _ColourMatch:
    """Colour cell (key) -> palette index, computed exactly for the cells the clip uses, as
    frames bring them: the clip is read once, and its keys are never all held at once (4 bytes
    a pixel). Generated video uses a few ten thousand cells; noise (e.g. a random-weight model)
    can use all two million: past `_MAX_EXACT_CELLS` new cells are matched at 6 bits per channel
    (8x fewer cells, one table for all). Exact matches are exact in float32 (small integers and
    halves), so a cell's index never depends on which frames brought it or in what batches."""

    _UNKNOWN = np.uint16(0xFFFF)

    def __init__(self, palette: np.ndarray) -> None:
        self.palette = palette
        self.lookup = np.full(1 << (3 * _KEY_BITS), self._UNKNOWN, np.uint16)
        self.exact_cells = 0
        self.coarse: np.ndarray | None = None
        self.seen: np.ndarray | None = None

    def first_guess(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The frame's keys and indices with the cells known so far (UNKNOWN where not); reads
        the table only, so frames can be looked up on threads while `complete` runs."""
        keys = _colour_keys(frame)
        return keys, np.take(self.lookup, keys)

    def complete(self, keys: np.ndarray, indices: np.ndarray, out: np.ndarray) -> None:
        """The frame's palette indices into `out` (uint8), its new cells matched first (in frame order)."""
        missing = np.flatnonzero(indices == self._UNKNOWN)
        if len(missing):
            missing_keys = keys.ravel()[missing]
            new = self._distinct(missing_keys)
            new = new[self.lookup[new] == self._UNKNOWN]  # an earlier frame may have brought some
            if self.exact_cells + len(new) <= _MAX_EXACT_CELLS:
                self.lookup[new] = _nearest(_cell_centres(new, _KEY_BITS), self.palette)
                self.exact_cells += len(new)
            else:
                self.lookup[new] = self._coarse_table()[new]
            indices.ravel()[missing] = self.lookup[missing_keys]
        np.copyto(out, indices, casting="unsafe")  # palette indices < 256

    def _distinct(self, keys: np.ndarray) -> np.ndarray:
        """`keys` without repeats, ascending: sorted when few, else marked in a table (the
        first frame brings most of a clip's cells: sorting its every pixel takes 10x longer)."""
        if len(keys) < _SORT_AT_MOST:
            return np.unique(keys)
        if self.seen is None:
            self.seen = np.zeros(len(self.lookup), bool)
        self.seen[keys] = True
        distinct = np.flatnonzero(self.seen).astype(np.uint32)
        self.seen[distinct] = False
        return distinct

    def _coarse_table(self) -> np.ndarray:
        if self.coarse is None:
            bits = _KEY_BITS - 1
            coarse = _nearest(_cell_centres(np.arange(1 << (3 * bits), dtype=np.uint32), bits), self.palette)
            keys_7 = np.arange(1 << (3 * _KEY_BITS), dtype=np.uint32)
            keys_6 = (((keys_7 >> (2 * _KEY_BITS + 1)) << (2 * bits))
                      | (((keys_7 >> (_KEY_BITS + 1)) & ((1 << bits) - 1)) << bits)
                      | ((keys_7 >> 1) & ((1 << bits) - 1)))
            self.coarse = coarse.astype(np.uint16)[keys_6]
        return self.coarse


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


Update = tuple[int, tuple[int, int, int, int], int]
"""One frame's update: the frame's index, the box (left, top, right, bottom) of what changed, its
delay in cs."""


def lzw_frames(frames: np.ndarray, updates: list[Update]) -> list[bytes]:
    """The image blocks of `updates` to the frames whose palette indices are `frames`."""
    # palette indices written as they are (no local colour table); disposal 1 = keep, so a
    # partial frame is drawn over the previous one
    blocks = []
    for index, (left, top, right, bottom), delay in updates:
        box = Image.fromarray(np.ascontiguousarray(frames[index, top:bottom, left:right]))
        blocks.append(b"".join(GifImagePlugin.getdata(box, (left, top), duration=delay * 10, disposal=1)))
    return blocks


def lzw_shared_frames(shared: dict[str, object], updates: list[Update]) -> list[bytes]:
    """`lzw_frames` in a worker process, on the shared array that `shared` names (its fields)."""
    return lzw_frames(cores.attach(cores.SharedName(**shared)), updates)  # type: ignore[arg-type]


def batch_bounds(num_frames: int, workers: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of frames handed to the LZW workers: one frame first, then twice
    as many each time up to num_frames / (`_BATCHES_PER_WORKER` * workers), and as the end nears,
    a share of what is left, so that the workers start at once and finish together."""
    largest = max(2, num_frames // (_BATCHES_PER_WORKER * workers))
    bounds, start, size = [], 0, 1
    while start < num_frames:
        size = min(size, largest, max(1, math.ceil((num_frames - start) / (2 * workers))))
        bounds.append((start, min(num_frames, start + size)))
        start, size = start + size, 2 * size
    return bounds


def _frame_updates(clip: Clip, palette: np.ndarray, indices: np.ndarray,
                   threads: ThreadPoolExecutor | None) -> Iterator[list[Update]]:
    """The clip's frames matched to the palette into `indices`, in batches, each batch's updates
    ready to be LZW-encoded while the next is matched."""
    delays = frame_delays_cs(clip.num_frames, clip.fps)
    match = _ColourMatch(palette)
    for start, stop in batch_bounds(clip.num_frames, clip.threads):
        batch = clip.frames[start:stop]
        updates: list[Update] = []
        guesses = threads.map(match.first_guess, batch) if threads else map(match.first_guess, batch)
        for index, (keys, guess) in enumerate(guesses, start):
            match.complete(keys, guess, out=indices[index])
            box = (0, 0, clip.width, clip.height) if index == 0 else _changed_box(indices[index - 1], indices[index])
            updates.append((index, box, delays[index]))
        yield updates


def _lzw_in_processes(batches: Iterator[list[Update]], indices: cores.SharedName, workers: int) -> list[bytes]:
    """Each batch LZW-encoded by a worker process as soon as it is matched, in order. At most two
    batches per worker are in flight: the next is matched while the workers encode (with one,
    a worker that finished waited for it: 10% slower), and the pool, shared with other requests'
    encoders, is not flooded."""
    pool = cores.process_pool()
    shared = dataclasses.asdict(indices)
    done: list[Future[list[bytes]]] = []
    running: collections.deque[Future[list[bytes]]] = collections.deque()
    for updates in batches:
        if len(running) >= 2 * workers:
            running.popleft().result()
        running.append(pool.submit(lzw_shared_frames, shared, updates))
        done.append(running[-1])
    return [block for future in done for block in future.result()]


def _encode_blocks(clip: Clip, palette: np.ndarray, threads: ThreadPoolExecutor | None) -> list[bytes]:
    shape = (clip.num_frames, clip.height, clip.width)
    if clip.threads > 1 and clip.num_frames > 1:
        try:
            with cores.SharedArray(shape, "uint8") as shared:
                return _lzw_in_processes(_frame_updates(clip, palette, shared.array, threads), shared.name,
                                         clip.threads)
        except Exception as exc:  # a worker died, none can start, no room to share: encode here
            if not cores.is_unavailable(exc):
                raise
    indices = np.empty(shape, np.uint8)
    return [block for updates in _frame_updates(clip, palette, indices, threads)
            for block in lzw_frames(indices, updates)]


def encode(clip: Clip, options: Options) -> bytes:
    palette = clip_palette(clip.frames)
    if clip.threads >= 2 * _LZW_COST:
        with ThreadPoolExecutor(clip.threads // _LZW_COST, thread_name_prefix="gif") as threads:
            blocks = _encode_blocks(clip, palette, threads)
    else:
        blocks = _encode_blocks(clip, palette, None)
    return b"".join([_global_header(clip.width, clip.height, palette.tobytes()), *blocks, b";"])
