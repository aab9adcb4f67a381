"""Decoders and synthetic clips for the tests: every test checks what actually comes back."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image


def synthetic_clip(num_frames: int = 12, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """A deterministic clip like generated video: smooth gradients (a sky-to-ground background
    that drifts), three soft-edged shapes moving across it, and mild noise (sigma 2).
    Real content for palettes and codecs; `np.zeros` would hide their bugs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = y / height, x / width
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    shapes = [((235, 80, 60), 0.18, 0.2, 0.35), ((60, 200, 120), 0.12, 0.8, 0.6), ((250, 220, 70), 0.1, 0.5, 0.8)]
    for t in range(num_frames):
        phase = t / max(1, num_frames)
        sky = np.stack([70 + 90 * v, 120 + 80 * v, 220 - 60 * v], -1)
        ground = np.stack([110 + 40 * u, 90 + 30 * u, 60 + 10 * u], -1)
        horizon = 0.6 + 0.05 * np.sin(2 * np.pi * (u + phase))
        mix = np.clip((v - horizon) * 12 + 0.5, 0, 1)[..., None]
        rgb = sky * (1 - mix) + ground * mix
        for colour, radius, cx, cy in shapes:
            cx = (cx + 0.5 * phase) % 1.0
            dist = np.hypot((u - cx) * width / height, v - cy)
            alpha = np.clip((radius - dist) * height / 2, 0, 1)[..., None]  # ~2 px soft edge
            rgb = rgb * (1 - alpha) + np.array(colour, np.float32) * alpha
        rgb += rng.normal(0, 2, rgb.shape)
        frames[t] = np.clip(rgb, 0, 255).astype(np.uint8)
    return frames


def _fractal_texture(rng: np.random.Generator, height: int, width: int, slope: float) -> np.ndarray:
    """Noise with a 1/f^slope spectrum (clouds, terrain, foliage by the slope), scaled to [0, 1]."""
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    spectrum = np.fft.rfft2(rng.normal(size=(height, width))) / radius**slope
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(height, width)).astype(np.float32)
    return (field - field.min()) / (field.max() - field.min())


def natural_clip(num_frames: int = 121, height: int = 512, width: int = 768, seed: int = 0) -> np.ndarray:
    """A clip with the statistics codecs meet in generated video, for the encoder benchmark:
    textured sky (clouds) over textured ground (fine detail), a camera panning 2 px a frame,
    soft-edged shapes moving at their own speeds, a slow change of light and sensor noise
    (sigma 1.5). Every frame differs; most of each is predictable from the one before."""
    rng = np.random.default_rng(seed)
    pan = 2
    span = width + pan * num_frames
    clouds = _fractal_texture(rng, height, span, 1.6)
    detail = _fractal_texture(rng, height, span, 0.9)
    v = (np.arange(height, dtype=np.float32) / height)[:, None, None]
    horizon = 0.55 + 0.04 * np.sin(np.arange(span, dtype=np.float32) / span * 6 * np.pi)[None, :, None]
    ground_mix = np.clip((v - horizon) * 30 + 0.5, 0, 1)
    sky = np.array([80, 130, 225], np.float32) * (1 - 0.3 * v) + 60 * clouds[..., None]
    ground = np.array([95, 120, 55], np.float32) * (0.55 + 0.9 * detail[..., None]) * (0.8 + 0.4 * v)
    world = sky * (1 - ground_mix) + ground * ground_mix
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    shapes = [((220, 70, 50), 0.12, 0.3, 0.45, 3.0), ((240, 210, 80), 0.07, 0.7, 0.25, -1.5),
              ((70, 90, 200), 0.09, 0.5, 0.75, 5.0)]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        rgb = world[:, t * pan:t * pan + width] * (0.9 + 0.1 * np.sin(2 * np.pi * t / max(num_frames, 2)))
        for colour, radius, cx, cy, speed in shapes:
            centre_x = (cx * width + speed * t) % width
            dist = np.hypot(x - centre_x, y - cy * height) / height
            alpha = np.clip((radius - dist) * height / 3, 0, 1)[..., None]  # ~3 px soft edge
            shade = 1 - 0.35 * np.clip((y - cy * height) / (radius * height), -1, 1)[..., None]
            rgb = rgb * (1 - alpha) + np.array(colour, np.float32) * shade * alpha
        rgb += rng.normal(0, 1.5, rgb.shape).astype(np.float32)
        frames[t] = np.clip(rgb, 0, 255).astype(np.uint8)
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, window: int = 8) -> float:
    """Mean SSIM (Wang et al. 2004) of two uint8 `(..., H, W, 3)` clips: luma, every 8x8 window."""

    def luma(x: np.ndarray) -> np.ndarray:
        return x[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])

    def window_mean(z: np.ndarray) -> np.ndarray:  # summed-area table: every window at once
        table = np.pad(z.cumsum(-1).cumsum(-2), [(0, 0)] * (z.ndim - 2) + [(1, 0), (1, 0)])
        w = window
        return (table[..., w:, w:] - table[..., :-w, w:] - table[..., w:, :-w] + table[..., :-w, :-w]) / w**2

    x, y = luma(a), luma(b)
    mean_x, mean_y = window_mean(x), window_mean(y)
    var_x = window_mean(x * x) - mean_x**2
    var_y = window_mean(y * y) - mean_y**2
    cov = window_mean(x * y) - mean_x * mean_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    index = (2 * mean_x * mean_y + c1) * (2 * cov + c2) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())


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


@dataclass
class DecodedAudio:
    codec: str
    sample_rate: int
    channels: int
    samples: np.ndarray
    """`(channels, n)` float32, decoded"""

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.sample_rate


def decode_audio(data: bytes) -> DecodedAudio:
    """The first audio stream of a WebM/MP4/WAV file, decoded with PyAV (AssertionError if none)."""
    import av

    with av.open(io.BytesIO(data)) as container:
        assert container.streams.audio, "no audio stream"
        stream = container.streams.audio[0]
        chunks = [_as_float(frame.to_ndarray()) for frame in container.decode(stream)]
        ctx = stream.codec_context
        channels = ctx.channels if hasattr(ctx, "channels") else len(ctx.layout.channels)
        # planar frames are (channels, n); packed ones (1, n * channels), interleaved
        samples = np.concatenate([c if c.shape[0] == channels else c.reshape(-1, channels).T for c in chunks], 1)
        return DecodedAudio(ctx.name, ctx.sample_rate, channels, samples)


def _as_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind == "i":  # PCM integers: full scale is 2^(bits - 1)
        return samples.astype(np.float32) / float(2 ** (8 * samples.dtype.itemsize - 1))
    return samples.astype(np.float32)


def decode_video(data: bytes) -> DecodedVideo:
    import av  # here: the GPU benchmark imports this module on a machine without PyAV

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


def output(result: dict, name: str) -> bytes:
    """The file of format `name` in a successful handler answer (base64 decoded)."""
    import base64

    assert result["ok"] is True, result
    return base64.b64decode(result["outputs"][f"{name}_base64"])


def zip_frames(result: dict) -> np.ndarray:
    """The frames of a successful handler answer's base64 ZIP output."""
    import base64

    assert result["ok"] is True, result
    return decode_zip(base64.b64decode(result["outputs"]["zip_base64"])).frames


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


def zip_members(data: bytes) -> dict[str, bytes]:
    """Each entry's bytes by name: what two archives must share to be the same, their entries'
    timestamps (the time of writing, to 2 s) aside."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def encoded_video(frames: np.ndarray, fps: int, fmt: str = "mp4") -> bytes:
    """`frames` as an MP4, WebM or GIF file, written by this project's own encoders."""
    from encoders.base import Clip
    from encoders.registry import FORMATS

    return FORMATS[fmt].encode(Clip(np.ascontiguousarray(frames), fps), FORMATS[fmt].Options())


def video_base64(frames: np.ndarray, fps: int, fmt: str = "mp4") -> str:
    import base64

    return base64.b64encode(encoded_video(frames, fps, fmt)).decode()


def pipeline_frames(video) -> np.ndarray:
    """A diffusers pipeline's `output_type="pt"` frames `(1, F, 3, H, W)` as the handler returns them:
    `(F, H, W, 3)` uint8, rounded."""
    import torch

    return video[0].mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
