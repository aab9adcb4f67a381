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
_DATA_URL = re.compile(r"^data:(image|video)/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)  # images and videos alike
_WHITESPACE = re.compile(r"\s+")
# Huffman-coded JPEG spends at least a bit per 8x8 block of each component: even a flat
# 6000x6000 image takes hundreds of KB. Far fewer bytes than this means the header claims a size
# the data does not hold, and libjpeg would fill the missing part with grey without a word.
_JPEG_MAX_PIXELS_PER_BYTE = 1000


def decode_base64(text: str, max_bytes: int, field: str = "image", setting: str = "VIDEO_MAX_IMAGE_BYTES") -> bytes:
    """The bytes `text` holds, refused by `field` when its length alone says they exceed `max_bytes`."""
    text = _DATA_URL.sub("", text.strip(), count=1)
    # 4 characters per 3 bytes, plus room for line breaks every 76 characters
    if len(text) > (max_bytes + 2) // 3 * 4 * 78 // 76 + 4:
        raise InvalidRequest(f"{field} is larger than this server's limit of {max_bytes} bytes "
                             f"(setting {setting})", field=field)
    compact = _WHITESPACE.sub("", text).rstrip("=")
    if not compact:
        raise InvalidRequest(f"{field} is empty", field=field)
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field} is not valid base64", field=field) from None


def decode_image(text: str, width: int, height: int, limits: Limits, field: str = "image") -> Image.Image:
    """Decode, apply EXIF orientation, convert to RGB, resize to cover and centre-crop to width x height;
    a refusal names `field` (`image`, `last_image`, `keyframes.2.image`)."""
    return fit_image(open_images({field: text}, limits)[field], width, height, field)


def open_images(texts: dict[str, str], limits: Limits) -> dict[str, Image.Image]:
    """Each field's image opened (its header read, no pixel decoded yet), the pixels of all of them
    together within VIDEO_MAX_IMAGE_PIXELS: one request's budget, however many images it sends."""
    opened: dict[str, Image.Image] = {}
    pixels = 0
    for field, text in texts.items():
        data = decode_base64(text, limits.max_image_bytes, field)
        try:
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except Image.DecompressionBombError:
            raise _too_many_pixels(limits, field) from None
        except Exception:  # whatever Pillow raises for bytes that are no (allowed) image
            raise InvalidRequest(f"{field} is not a decodable image (accepted: {', '.join(ALLOWED_FORMATS)})",
                                 field=field) from None
        if image.width * image.height > limits.max_image_pixels:
            raise _too_many_pixels(limits, field, image.size)
        pixels += image.width * image.height
        if pixels > limits.max_image_pixels:
            raise InvalidRequest(f"{field}: the request's images have more pixels together ({pixels} so far) than "
                                 f"this server's limit of {limits.max_image_pixels} for all the images of a request "
                                 "(setting VIDEO_MAX_IMAGE_PIXELS)", field=field)
        if image.format == "JPEG" and image.width * image.height > _JPEG_MAX_PIXELS_PER_BYTE * len(data):
            raise InvalidRequest(f"{field} data is truncated: its header claims more pixels than its data holds",
                                 field=field)
        opened[field] = image
    return opened


def fit_image(image: Image.Image, width: int, height: int, field: str) -> Image.Image:
    """An opened image decoded (at a reduced size where the format allows it), upright, RGB, covering
    width x height and centre-cropped to it."""
    with image:
        try:
            # JPEG can decode at 1/2, 1/4, 1/8 scale directly: no bigger than needed (still covers)
            side = max(width, height)
            image.draft("RGB", (side, side))
            upright = ImageOps.exif_transpose(image).convert("RGB")
        except Exception:
            raise InvalidRequest(f"{field} data is truncated or corrupt", field=field) from None
    return ImageOps.fit(upright, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def _too_many_pixels(limits: Limits, field: str, size: tuple[int, int] | None = None) -> InvalidRequest:
    got = f" ({size[0]}x{size[1]})" if size else ""
    return InvalidRequest(f"{field} has more pixels{got} than this server's limit of "
                          f"{limits.max_image_pixels} (setting VIDEO_MAX_IMAGE_PIXELS)", field=field)
