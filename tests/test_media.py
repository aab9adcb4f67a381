"""The quality measures the benchmarks report (tests/media.py) behave as SSIM and PSNR should."""

from __future__ import annotations

import numpy as np

from tests.media import psnr, ssim, synthetic_clip


def test_ssim_is_one_for_equal_clips_and_falls_with_noise():
    clip = synthetic_clip(4, 64, 96)
    rng = np.random.default_rng(0)

    def noisy(sigma: float) -> np.ndarray:
        return np.clip(clip + rng.normal(0, sigma, clip.shape), 0, 255).astype(np.uint8)

    assert ssim(clip, clip) == 1.0
    scores = [ssim(clip, noisy(sigma)) for sigma in (2, 10, 40)]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    assert psnr(clip, noisy(2)) > 40 > psnr(clip, noisy(40))
    unrelated = rng.integers(0, 256, clip.shape, dtype=np.uint8)
    assert abs(ssim(clip, unrelated)) < 0.1
