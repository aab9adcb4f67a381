"""The thumbnail (WebP) and the sprite sheet (JPEG): decoded, they show the clip's frames."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from encoders import spritesheet, thumbnail
from encoders.base import Clip
from tests.media import psnr, synthetic_clip


def test_thumbnail_is_the_first_frame_as_webp():
    frames = synthetic_clip(9, 64, 96)
    data = thumbnail.encode(Clip(frames, fps=12), thumbnail.Options())
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.size == (96, 64)
    still = np.asarray(image.convert("RGB"))
    assert psnr(still[None], frames[:1]) > 28
    assert psnr(still[None], frames[-1:]) < psnr(still[None], frames[:1])  # the first, not another


@pytest.mark.parametrize(("num_frames", "grid"), [(1, (1, 1)), (9, (3, 3)), (10, (4, 3)), (40, (4, 4))])
def test_spritesheet_places_evenly_spaced_frames_in_a_grid(num_frames, grid):
    frames = synthetic_clip(num_frames, 32, 48)
    data = spritesheet.encode(Clip(frames, fps=12), spritesheet.Options())
    sheet = Image.open(io.BytesIO(data))
    columns, rows = grid
    assert sheet.format == "JPEG" and sheet.size == (columns * 48, rows * 32)
    pixels = np.asarray(sheet.convert("RGB"))
    indices = spritesheet.sprite_indices(num_frames)
    assert indices[0] == 0 and indices[-1] == num_frames - 1 and len(indices) == min(num_frames, 16)
    for place, index in enumerate(indices):
        row, column = divmod(place, columns)
        tile = pixels[row * 32:(row + 1) * 32, column * 48:(column + 1) * 48]
        assert psnr(tile[None], frames[index:index + 1]) > 24, (place, index)


def test_spritesheet_scales_wide_frames_down():
    frames = synthetic_clip(4, 128, 512)
    sheet = Image.open(io.BytesIO(spritesheet.encode(Clip(frames, fps=12), spritesheet.Options())))
    assert sheet.size == (2 * 256, 2 * 64)
