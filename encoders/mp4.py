"""MP4 (H.264 High, yuv420p, `+faststart`) through the bundled ffmpeg: plays in every browser,
phone and chat app. `+faststart` puts the index first so playback starts before the download ends.

Quality presets, as libx264 settings (constant quality):

| quality | settings |
|---|---|
| fast | `-preset veryfast -crf 28` |
| good | `-preset medium -crf 23` (default; x264's own default quality) |
| best | `-preset slow -crf 18` (visually lossless for most content) |

4:2:0 needs even sizes: an odd width or height is padded by one pixel (edge repeated).
A soundtrack (LTX-2) is muxed as AAC-LC at 128 kb/s.
"""

from __future__ import annotations

from encoders import _ffmpeg
from encoders.base import Clip, VideoOptions

NAME, MIME, EXT = "mp4", "video/mp4", ".mp4"
MAX_FPS = 120  # H.264 in MP4 stores any rate; 120 bounds the work a request can ask for
NEEDS_AUDIO = False
STREAMS = True  # frames go to ffmpeg as they are decoded
ENCODE_COST = 1.1  # libx264 `medium`

PRESETS: dict[str, tuple[str, ...]] = {
    "fast": ("-preset", "veryfast", "-crf", "28"),
    "good": ("-preset", "medium", "-crf", "23"),
    "best": ("-preset", "slow", "-crf", "18"),
}


class Options(VideoOptions):
    """`"mp4": {"fps": int, "quality": "fast" | "good" | "best"}`."""


def ffmpeg_args(options: Options, clip: Clip) -> dict:
    return {"codec": "libx264", "even_size": True,
            "codec_args": (*PRESETS[options.quality], "-profile:v", "high", "-movflags", "+faststart"),
            "audio_args": ("-c:a", "aac", "-b:a", "128k")}


def encode(clip: Clip, options: Options) -> bytes:
    return _ffmpeg.encode(clip, suffix=EXT, **ffmpeg_args(options, clip))
