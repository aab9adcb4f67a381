from __future__ import annotations

import pytest

from encoders import webm
from encoders.base import Clip
from tests.media import decode_video, psnr, synthetic_clip

FRAMES = synthetic_clip(24, 64, 96)


@pytest.mark.parametrize("quality", ["fast", "good", "best"])
def test_vp9_with_exact_frames_size_and_rate(quality):
    video = decode_video(webm.encode(Clip(FRAMES, fps=24), webm.Options(quality=quality)))
    assert video.codec == "vp9"
    assert video.frames.shape == FRAMES.shape
    assert video.size == (96, 64)
    assert video.fps == 24
    assert video.pix_fmt == "yuv420p"
    assert video.duration_s == pytest.approx(1.0, abs=0.05)
    assert psnr(video.frames, FRAMES) > 26


def test_colour_is_tagged_bt709_limited_range():
    video = decode_video(webm.encode(Clip(FRAMES, fps=12), webm.Options()))
    assert video.colour_tags == (1, 1, 1, 1)


def test_best_is_closer_to_the_source_than_fast():
    fast = decode_video(webm.encode(Clip(FRAMES, fps=12), webm.Options(quality="fast")))
    best = decode_video(webm.encode(Clip(FRAMES, fps=12), webm.Options(quality="best")))
    assert psnr(best.frames, FRAMES) > psnr(fast.frames, FRAMES)
