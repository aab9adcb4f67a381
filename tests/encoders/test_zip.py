from __future__ import annotations

import numpy as np

from encoders import zip as zip_format
from encoders.base import Clip
from tests.media import decode_zip, synthetic_clip


def test_lossless_png_frames_stored_with_manifest():
    frames = synthetic_clip(7, 32, 64)
    data = zip_format.encode(Clip(frames, fps=9, metadata={"seed": 4, "mode": "t2v"}), zip_format.Options())
    archive = decode_zip(data)  # also checks every entry is stored, not deflated
    np.testing.assert_array_equal(archive.frames, frames)
    assert archive.names == [f"frame_{i:05d}.png" for i in range(7)] + ["manifest.json"]
    assert archive.manifest["fps"] == 9 and archive.manifest["num_frames"] == 7
    assert (archive.manifest["width"], archive.manifest["height"]) == (64, 32)
    assert archive.manifest["seed"] == 4 and archive.manifest["mode"] == "t2v"
