"""ZIP of PNG frames (`frame_00000.png`, ...) plus `manifest.json`, and `audio.wav` (16-bit PCM,
as long as the frames play) where the model made a soundtrack.

PNGs are written at compression level 1 on a thread pool (Pillow's encoder releases the GIL)
and stored, not deflated: deflating PNG data again gains nothing and costs time.
"""

from __future__ import annotations

import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from encoders.base import Clip, FormatOptions

NAME, MIME, EXT = "zip", "application/zip", ".zip"
MAX_FPS = 120  # the rate is only written in the manifest
NEEDS_AUDIO = False
_PNG_LEVEL = 1
_MAX_WORKERS = 8


class Options(FormatOptions):
    """`"zip": {"fps": int}` (the fps is recorded in the manifest)."""


def frame_name(index: int) -> str:
    return f"frame_{index:05d}.png"


def _png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=_PNG_LEVEL)
    return buffer.getvalue()


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
    with ThreadPoolExecutor(max_workers=_MAX_WORKERS) as pool, \
            zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for index, png in enumerate(pool.map(_png, clip.frames)):
            zf.writestr(frame_name(index), png)
        if soundtrack is not None:
            zf.writestr("audio.wav", soundtrack.wav())
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    return archive.getvalue()
