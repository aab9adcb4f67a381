"""WebM (VP9, yuv420p) through the bundled ffmpeg.

Quality presets, as libvpx-vp9 settings (constant quality: `-b:v 0` with `-crf`):

| quality | settings | use |
|---|---|---|
| fast | `-deadline realtime -cpu-used 8 -crf 40` | quickest encode, visibly softer |
| good | `-deadline good -cpu-used 4 -crf 32 -row-mt 1` | default: the usual quality/speed trade |
| best | `-deadline good -cpu-used 1 -crf 24 -row-mt 1` | highest quality offered, ~2-3x slower than good |

`-deadline best` is not offered: many times slower for a fraction of a dB. A soundtrack (LTX-2)
is muxed as Opus at 96 kb/s.
"""

from __future__ import annotations

from encoders import _ffmpeg
from encoders.base import Clip, VideoOptions

NAME, MIME, EXT = "webm", "video/webm", ".webm"
MAX_FPS = 120  # VP9 in WebM stores any rate; 120 bounds the work a request can ask for
NEEDS_AUDIO = False

PRESETS: dict[str, tuple[str, ...]] = {
    "fast": ("-deadline", "realtime", "-cpu-used", "8", "-crf", "40", "-b:v", "0", "-row-mt", "1"),
    "good": ("-deadline", "good", "-cpu-used", "4", "-crf", "32", "-b:v", "0", "-row-mt", "1"),
    "best": ("-deadline", "good", "-cpu-used", "1", "-crf", "24", "-b:v", "0", "-row-mt", "1"),
}


class Options(VideoOptions):
    """`"webm": {"fps": int, "quality": "fast" | "good" | "best"}`."""


def ffmpeg_args(options: Options) -> dict:
    return {"codec": "libvpx-vp9", "codec_args": PRESETS[options.quality],
            "audio_args": ("-c:a", "libopus", "-b:a", "96k")}


def encode(clip: Clip, options: Options) -> bytes:
    return _ffmpeg.encode(clip, suffix=EXT, **ffmpeg_args(options))
