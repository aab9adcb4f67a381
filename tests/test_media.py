"""The quality measures the benchmarks report (tests/media.py) behave as SSIM and PSNR should."""

from __future__ import annotations

import numpy as np

from tests.media import natural_clip, psnr, ssim, synthetic_clip


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


def test_natural_clip_is_deterministic_textured_and_moving():
    """What the encoder benchmark needs of it: the same clip every run, detail at every scale
    (not only gradients), and every frame different from the one before but close to it."""
    clip = natural_clip(6, 64, 96)
    np.testing.assert_array_equal(clip, natural_clip(6, 64, 96))
    assert clip.shape == (6, 64, 96, 3) and clip.dtype == np.uint8
    grey = clip.astype(np.float32).mean(-1)
    assert np.abs(np.diff(grey, axis=2)).mean() > 2  # texture: neighbouring pixels differ
    steps = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))
    assert (steps > 0.5).all() and (steps < 20).all()
