from __future__ import annotations

import dataclasses
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from encoders import zip as zip_format
from encoders.base import Clip
from tests.media import decode_zip, synthetic_clip, zip_members


def test_lossless_png_frames_stored_with_manifest():
    frames = synthetic_clip(7, 32, 64)
    data = zip_format.encode(Clip(frames, fps=9, metadata={"seed": 4, "mode": "t2v"}), zip_format.Options())
    archive = decode_zip(data)  # also checks every entry is stored, not deflated
    np.testing.assert_array_equal(archive.frames, frames)
    assert archive.names == [f"frame_{i:05d}.png" for i in range(7)] + ["manifest.json"]
    assert archive.manifest["fps"] == 9 and archive.manifest["num_frames"] == 7
    assert (archive.manifest["width"], archive.manifest["height"]) == (64, 32)
    assert archive.manifest["seed"] == 4 and archive.manifest["mode"] == "t2v"


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 7), (5, 3), (33, 65)])
def test_each_png_decodes_to_its_frame_exactly(height, width):
    """The PNG writer's own rows, filter and chunks, read back by Pillow (noise: every byte value)."""
    frame = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.open(io.BytesIO(zip_format.png(frame)))
    image.load()  # checks the chunks' CRCs and the zlib stream
    assert (image.mode, image.size) == ("RGB", (width, height))
    np.testing.assert_array_equal(np.asarray(image), frame)


def test_the_same_archive_on_any_number_of_cores():
    clip = Clip(synthetic_clip(9, 32, 48), fps=9)
    archives = [zip_members(zip_format.encode(dataclasses.replace(clip, threads=threads), zip_format.Options()))
                for threads in (1, 2, 5)]
    assert archives[0] == archives[1] == archives[2]


def test_zlib_ng_writes_the_same_pngs_as_zlib(monkeypatch):
    """zlib-ng only makes the PNGs faster: where it is absent, zlib writes the same bytes."""
    pytest.importorskip("zlib_ng")
    frames = synthetic_clip(3, 40, 56)
    fast = [zip_format.png(frame) for frame in frames]
    monkeypatch.setattr(zip_format, "deflate_library", zlib)
    assert [zip_format.png(frame) for frame in frames] == fast
