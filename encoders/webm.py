"""WebM (VP9, yuv420p) through the bundled ffmpeg.

Quality presets, as libvpx-vp9 settings (constant quality: `-b:v 0` with `-crf`):

| quality | settings | use |
|---|---|---|
| fast | `-deadline realtime -cpu-used 8 -crf 40` | quickest encode, visibly softer |
| good | `-deadline good -cpu-used 4 -crf 32 -row-mt 1` | default: the usual quality/speed trade |
| best | `-deadline good -cpu-used 1 -crf 24 -row-mt 1` | highest quality offered, ~2-3x slower than good |

Tile columns follow the clip's cores and width (`tile_columns`); `-row-mt 1` threads the rows.
`-deadline best` is not offered: many times slower for a fraction of a dB. A soundtrack (LTX-2)
is muxed as Opus at 96 kb/s.
"""

from __future__ import annotations

from encoders import _ffmpeg
from encoders.base import Clip, VideoOptions

NAME, MIME, EXT = "webm", "video/webm", ".webm"
MAX_FPS = 120  # VP9 in WebM stores any rate; 120 bounds the work a request can ask for
NEEDS_AUDIO = False
STREAMS = True  # frames go to ffmpeg as they are decoded
ENCODE_COST = 2.5  # libvpx-vp9 at `good`: the slowest

PRESETS: dict[str, tuple[str, ...]] = {
    "fast": ("-deadline", "realtime", "-cpu-used", "8", "-crf", "40", "-b:v", "0", "-row-mt", "1"),
    "good": ("-deadline", "good", "-cpu-used", "4", "-crf", "32", "-b:v", "0", "-row-mt", "1"),
    "best": ("-deadline", "good", "-cpu-used", "1", "-crf", "24", "-b:v", "0", "-row-mt", "1"),
}


class Options(VideoOptions):
    """`"webm": {"fps": int, "quality": "fast" | "good" | "best"}`."""


_MIN_TILE_WIDTH = 256  # VP9's narrowest tile column


def tile_columns(clip: Clip) -> int:
    """log2 of the tile columns: one per thread, as many as the width allows (VP9 encodes tile
    columns in parallel; rows within them with `-row-mt`)."""
    columns = max(1, min(clip.threads, clip.width // _MIN_TILE_WIDTH))
    return columns.bit_length() - 1


def ffmpeg_args(options: Options, clip: Clip) -> dict:
    return {"codec": "libvpx-vp9", "codec_args": (*PRESETS[options.quality], "-tile-columns", str(tile_columns(clip))),
            "audio_args": ("-c:a", "libopus", "-b:a", "96k")}


def encode(clip: Clip, options: Options) -> bytes:
    return _ffmpeg.encode(clip, suffix=EXT, **ffmpeg_args(options, clip))
