from __future__ import annotations

import base64
import io
import struct

import numpy as np
import pytest
from PIL import Image

from video_endpoint.errors import InvalidRequest
from video_endpoint.image_input import decode_image
from video_endpoint.request_schema import Limits


def encoded(image: Image.Image, fmt: str = "PNG", **save_args) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return base64.b64encode(buffer.getvalue()).decode()


def halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2] = (255, 0, 0)
    rgb[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(rgb)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180: the stored left half is shown on the right
    image = decode_image(encoded(halves(64, 64), "JPEG", exif=exif), 64, 64, Limits())
    pixels = np.asarray(image)
    assert pixels[32, 5, 2] > 200 and pixels[32, 58, 0] > 200  # blue left, red right


def test_resize_to_cover_then_centre_crop():
    # 200x100 (wide) into 64x64: scaled to 128x64, the middle 64 columns kept: red | blue centre
    image = decode_image(encoded(halves(200, 100)), 64, 64, Limits())
    pixels = np.asarray(image)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert pixels[32, 2, 0] > 200 and pixels[32, 61, 2] > 200


def test_palette_and_alpha_images_become_rgb():
    image = decode_image(encoded(halves(40, 40).convert("P")), 32, 32, Limits())
    assert image.mode == "RGB"
    image = decode_image(encoded(halves(40, 40).convert("RGBA")), 32, 32, Limits())
    assert image.mode == "RGB"


def test_pixel_limit_is_read_from_the_header():
    with pytest.raises(InvalidRequest, match="VIDEO_MAX_IMAGE_PIXELS") as failure:
        decode_image(encoded(halves(300, 300)), 32, 32, Limits(max_image_pixels=200 * 200))
    assert failure.value.field == "image"


def test_byte_limit_is_checked_before_decoding():
    with pytest.raises(InvalidRequest, match="VIDEO_MAX_IMAGE_BYTES"):
        decode_image("A" * 10_000, 32, 32, Limits(max_image_bytes=1000))


@pytest.mark.parametrize("text", ["%%%%", "abc", base64.b64encode(b"\x89PNG\r\n\x1a\n truncated").decode()])
def test_garbage_is_an_invalid_image(text):
    with pytest.raises(InvalidRequest) as failure:
        decode_image(text, 32, 32, Limits())
    assert failure.value.field == "image"


def test_a_jpeg_whose_header_claims_more_than_its_data_is_refused():
    """64x64 of data behind a header that says 6000x6000: libjpeg fills the rest with grey, which
    used to be accepted as the input image."""
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    data = bytearray(buffer.getvalue())
    frame_header = data.find(b"\xff\xc0")  # SOF0: ..., height, width
    struct.pack_into(">HH", data, frame_header + 5, 6000, 6000)
    with pytest.raises(InvalidRequest, match="header claims more pixels than its data holds"):
        decode_image(base64.b64encode(bytes(data)).decode(), 64, 64, Limits())
    # a flat image that large is fine: real data, however well it compresses
    flat = io.BytesIO()
    Image.new("RGB", (3000, 2000), (90, 120, 200)).save(flat, format="JPEG", quality=75)
    assert decode_image(base64.b64encode(flat.getvalue()).decode(), 96, 64, Limits()).size == (96, 64)


def test_the_images_of_a_request_share_one_pixel_budget():
    """Ten images of 40 Mpx each used to be decoded one after the other (400 Mpx, 16 s): the
    request's images together are within VIDEO_MAX_IMAGE_PIXELS, checked from their headers
    before any is decoded."""
    import time

    from video_endpoint import stages

    big = Image.new("RGB", (2000, 2000), (20, 90, 200))  # 4 Mpx, compresses to a few KB
    png = io.BytesIO()
    big.save(png, "PNG", compress_level=9)
    image = base64.b64encode(png.getvalue()).decode()
    body = {"inputs": {"prompt": "p", "num_frames": 17, "height": 64, "width": 96, "image": image,
                       "last_image": image, "keyframes": [{"image": image, "frame": i} for i in range(1, 9)]}}
    limits = Limits(max_image_pixels=10_000_000)  # each image alone is within it; the ten together are not
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="VIDEO_MAX_IMAGE_PIXELS") as refused:
        stages.decode(body, limits)
    assert refused.value.field == "keyframes.0.image"  # the third image passes the budget
    assert time.perf_counter() - started < 1.0  # nothing was decoded
    two = {"inputs": {**body["inputs"], "keyframes": []}}
    assert stages.decode(two, limits).last_image.size == (96, 64)
