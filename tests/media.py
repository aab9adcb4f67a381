"""Decoders and synthetic clips for the tests: every test checks what actually comes back."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image


def synthetic_clip(num_frames: int = 12, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Gradients, a moving square and mild noise: real content for palettes and codecs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        rgb = np.stack([(x / width * 255 + t * 6) % 256, y / height * 255,
                        128 + 100 * np.sin((x + y + t * 8) / 20)], axis=-1)
        cx = int(width * (0.2 + 0.6 * t / max(1, num_frames)))
        rgb[height // 3: 2 * height // 3, max(cx - 8, 0): cx + 8] = (250, 40, 40)
        rgb += rng.normal(0, 2, rgb.shape)
        frames[t] = np.clip(rgb, 0, 255).astype(np.uint8)
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


@dataclass
class DecodedGif:
    frames: np.ndarray
    durations_ms: list[int]
    loop: int | None
    size: tuple[int, int]


def decode_gif(data: bytes) -> DecodedGif:
    assert data[:6] == b"GIF89a", data[:6]
    image = Image.open(io.BytesIO(data))
    frames, durations = [], []
    for index in range(image.n_frames):
        image.seek(index)
        durations.append(image.info["duration"])
        frames.append(np.asarray(image.convert("RGB")))
    return DecodedGif(np.stack(frames), durations, image.info.get("loop"), image.size)


@dataclass
class DecodedVideo:
    codec: str
    frames: np.ndarray
    fps: float
    size: tuple[int, int]
    pix_fmt: str
    colour_tags: tuple[int, int, int, int]
    """(matrix, primaries, transfer, range) as FFmpeg numbers: 1 = BT.709 / limited range."""
    duration_s: float | None


def decode_video(data: bytes) -> DecodedVideo:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        duration = (float(container.duration) / av.time_base) if container.duration else None
        ctx = stream.codec_context
        return DecodedVideo(ctx.name, np.stack(frames), float(stream.average_rate),
                            (ctx.width, ctx.height), ctx.pix_fmt,
                            (ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range), duration)


@dataclass
class DecodedZip:
    frames: np.ndarray
    names: list[str]
    manifest: dict


def decode_zip(data: bytes) -> DecodedZip:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pngs = sorted(name for name in names if name.endswith(".png"))
        frames = []
        for name in pngs:
            with Image.open(io.BytesIO(archive.read(name))) as png:
                assert png.format == "PNG"
                frames.append(np.asarray(png.convert("RGB")))
        manifest = json.loads(archive.read("manifest.json"))
        stored = {info.compress_type for info in archive.infolist()}
    assert stored == {zipfile.ZIP_STORED}
    return DecodedZip(np.stack(frames), names, manifest)
