"""The input image of an image-to-video request: base64 text -> an RGB image of the video's size.

Accepts plain or URL-safe base64, with or without padding, wrapped at any column (GNU `base64`
wraps at 76), or a `data:image/...;base64,` URL. Sizes are checked before work: the text length
before decoding, the pixel count from the image header before the pixels are decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image, ImageOps

from video_endpoint.errors import InvalidRequest
from video_endpoint.request_schema import Limits

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
# Huffman-coded JPEG spends at least a bit per 8x8 block of each component: even a flat
# 6000x6000 image takes hundreds of KB. Far fewer bytes than this means the header claims a size
# the data does not hold, and libjpeg would fill the missing part with grey without a word.
_JPEG_MAX_PIXELS_PER_BYTE = 1000


def decode_base64(text: str, max_bytes: int) -> bytes:
    text = _DATA_URL.sub("", text.strip(), count=1)
    # 4 characters per 3 bytes, plus room for line breaks every 76 characters
    if len(text) > (max_bytes + 2) // 3 * 4 * 78 // 76 + 4:
        raise InvalidRequest(f"image is larger than this server's limit of {max_bytes} bytes "
                             "(setting VIDEO_MAX_IMAGE_BYTES)", field="image")
    compact = _WHITESPACE.sub("", text).rstrip("=")
    if not compact:
        raise InvalidRequest("image is empty", field="image")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("image is not valid base64", field="image") from None


def decode_image(text: str, width: int, height: int, limits: Limits) -> Image.Image:
    """Decode, apply EXIF orientation, convert to RGB, resize to cover and centre-crop to width x height."""
    data = decode_base64(text, limits.max_image_bytes)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise _too_many_pixels(limits) from None
    except Exception:  # whatever Pillow raises for bytes that are no (allowed) image
        raise InvalidRequest(f"image is not a decodable image (accepted: {', '.join(ALLOWED_FORMATS)})",
                             field="image") from None
    with image:
        if image.width * image.height > limits.max_image_pixels:
            raise _too_many_pixels(limits, image.size)
        if image.format == "JPEG" and image.width * image.height > _JPEG_MAX_PIXELS_PER_BYTE * len(data):
            raise InvalidRequest("image data is truncated: its header claims more pixels than its data holds",
                                 field="image")
        try:
            # JPEG can decode at 1/2, 1/4, 1/8 scale directly: no bigger than needed (still covers)
            side = max(width, height)
            image.draft("RGB", (side, side))
            upright = ImageOps.exif_transpose(image).convert("RGB")
        except Exception:
            raise InvalidRequest("image data is truncated or corrupt", field="image") from None
    return ImageOps.fit(upright, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def _too_many_pixels(limits: Limits, size: tuple[int, int] | None = None) -> InvalidRequest:
    got = f" ({size[0]}x{size[1]})" if size else ""
    return InvalidRequest(f"image has more pixels{got} than this server's limit of "
                          f"{limits.max_image_pixels} (setting VIDEO_MAX_IMAGE_PIXELS)", field="image")
