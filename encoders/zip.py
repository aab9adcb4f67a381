"""ZIP of PNG frames (`frame_00000.png`, ...) plus `manifest.json`, and `audio.wav` (16-bit PCM,
as long as the frames play) where the model made a soundtrack.

Each PNG is one IDAT of the frame's rows, every row with the Up filter (the difference to the
row above: smooth video turns to small numbers), Huffman-coded by zlib without string matching
(on filtered video rows it finds little: 12% faster than level 1 for the same size), on the
cores the clip is given (numpy and zlib release the GIL). The Huffman coding is zlib-ng's where
it is installed (requirements.txt): the same bytes as zlib's, in half the time; zlib's otherwise.
Pillow's PNG writer tries all five filters on every row: 3-4x slower here, for a bigger file
(benchmarks/encoders.py). The PNGs are stored in the ZIP, not deflated again: that gains nothing
and costs time.
"""

from __future__ import annotations

import io
import json
import struct
import types
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from encoders.base import Clip, FormatOptions

deflate_library: types.ModuleType
try:
    from zlib_ng import zlib_ng as deflate_library
except ImportError:  # a platform without its wheels: the standard library's zlib, same bytes
    deflate_library = zlib

NAME, MIME, EXT = "zip", "application/zip", ".zip"
MAX_FPS = 120  # the rate is only written in the manifest
NEEDS_AUDIO = False
STREAMS = True  # each frame is a PNG of its own
ENCODE_COST = 1.0  # the unit: a PNG per frame
_PNG_LEVEL = 1
_UP_FILTER = 2


class Options(FormatOptions):
    """`"zip": {"fps": int}` (the fps is recorded in the manifest)."""


def frame_name(index: int) -> str:
    return f"frame_{index:05d}.png"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(frame: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of `(H, W, 3)` uint8 `frame`."""
    height, width = frame.shape[:2]
    rows = frame.reshape(height, width * 3)
    filtered = np.empty((height, 1 + width * 3), np.uint8)
    filtered[:, 0] = _UP_FILTER
    filtered[0, 1:] = rows[0]  # the row above the first is zeros
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG defines it
    deflate = deflate_library.compressobj(_PNG_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    data = deflate.compress(filtered.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def encode(clip: Clip, options: Options) -> bytes:
    manifest = {
        "fps": clip.fps,
        "num_frames": clip.num_frames,
        "width": clip.width,
        "height": clip.height,
        "frames": [frame_name(i) for i in range(clip.num_frames)],
        **clip.metadata,
    }
    soundtrack = clip.soundtrack()
    if soundtrack is not None:
        manifest["audio"] = {"file": "audio.wav", "sample_rate": soundtrack.sample_rate,
                             "channels": soundtrack.channels, "seconds": soundtrack.seconds}
    archive = io.BytesIO()
    with ThreadPoolExecutor(max_workers=clip.threads, thread_name_prefix="png") as pool, \
            zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        pngs = [pool.submit(png, frame) for batch in clip.batches() for frame in batch]
        for index, frame_png in enumerate(pngs):
            zf.writestr(frame_name(index), frame_png.result())
        if soundtrack is not None:
            zf.writestr("audio.wav", soundtrack.wav())
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    return archive.getvalue()
