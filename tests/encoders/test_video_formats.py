"""WebM (VP9) and MP4 (H.264): codec, frames, size, rate, colour tags and a quality floor per preset."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from encoders import _ffmpeg, mp4, webm
from encoders.base import Clip
from tests.media import decode_video, psnr, synthetic_clip

FRAMES = synthetic_clip(24, 64, 96)
# Measured on this clip: VP9 31.2/32.7/33.1 dB, H.264 29.8/32.3/32.9 dB (fast/good/best).
FLOORS = {"webm": {"fast": 29, "good": 31, "best": 31.5}, "mp4": {"fast": 28, "good": 30.5, "best": 31.5}}
FORMATS = {"webm": (webm, "vp9"), "mp4": (mp4, "h264")}


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("quality", ["fast", "good", "best"])
def test_decodes_with_exact_frames_size_rate_and_quality(name, quality):
    module, codec = FORMATS[name]
    video = decode_video(module.encode(Clip(FRAMES, fps=24), module.Options(quality=quality)))
    assert video.codec == codec
    assert video.frames.shape == FRAMES.shape
    assert video.size == (96, 64)
    assert video.fps == 24
    assert video.pix_fmt == "yuv420p"
    assert video.duration_s == pytest.approx(1.0, abs=0.05)
    assert video.colour_tags == (1, 1, 1, 1)  # BT.709 matrix, primaries, transfer; limited range
    assert psnr(video.frames, FRAMES) > FLOORS[name][quality]


@pytest.mark.parametrize("name", FORMATS)
def test_best_is_closer_to_the_source_than_fast(name):
    module, _ = FORMATS[name]
    fast = decode_video(module.encode(Clip(FRAMES, fps=12), module.Options(quality="fast")))
    best = decode_video(module.encode(Clip(FRAMES, fps=12), module.Options(quality="best")))
    assert psnr(best.frames, FRAMES) > psnr(fast.frames, FRAMES)


def test_mp4_index_comes_first_for_streaming():
    data = mp4.encode(Clip(FRAMES, fps=12), mp4.Options())
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart


def test_mp4_odd_size_is_padded_to_even():
    odd = synthetic_clip(6, 33, 47)
    video = decode_video(mp4.encode(Clip(odd, fps=12), mp4.Options()))
    assert video.size == (48, 34) and len(video.frames) == 6
    assert psnr(video.frames[:, :33, :47], odd) > 26


@pytest.mark.parametrize(("width", "threads", "columns"), [(96, 8, 0), (768, 1, 0), (768, 2, 1), (768, 16, 1),
                                                           (1280, 4, 2), (1920, 16, 2)])
def test_vp9_tile_columns_follow_the_cores_and_the_width(width, threads, columns):
    """A tile column is at least 256 px wide; one per core, as many as fit, in powers of two."""
    clip = Clip(np.zeros((1, 16, width, 3), np.uint8), fps=12, threads=threads)
    assert webm.tile_columns(clip) == columns


@pytest.mark.parametrize("name", FORMATS)
def test_ffmpeg_runs_with_the_clips_cores_and_decodes_the_same_on_any(name):
    module, _ = FORMATS[name]
    for threads in (1, 3):
        clip = Clip(FRAMES, fps=24, threads=threads)
        command = _ffmpeg.command(clip, "out" + module.EXT, **module.ffmpeg_args(module.Options(), clip))
        assert command[command.index("-threads") + 1] == str(threads)
        video = decode_video(module.encode(clip, module.Options()))
        assert video.frames.shape == FRAMES.shape
        assert psnr(video.frames, FRAMES) > FLOORS[name]["good"]


def test_an_ffmpeg_that_hangs_is_killed_at_the_timeout(monkeypatch, tmp_path):
    """One that stops reading its frames: the write waits, the timer kills it, the error says so
    and no process is left behind."""
    import imageio_ffmpeg

    hanging = tmp_path / "ffmpeg"
    hanging.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(hanging))
    monkeypatch.setattr(_ffmpeg, "ENCODE_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(_ffmpeg.FfmpegError, match=r"killed after 1\.0 s"):
        mp4.encode(Clip(FRAMES, fps=24), mp4.Options())
    assert time.monotonic() - started < 30
    pid = int((tmp_path / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
