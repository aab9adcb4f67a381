"""WAV: the soundtrack alone (16-bit PCM at the model's sample rate), as long as the video plays.

Only for a model that makes sound (LTX-2); asking it of another answers `unsupported`.
"""

from __future__ import annotations

from encoders.base import Clip, FormatOptions

NAME, MIME, EXT = "wav", "audio/wav", ".wav"
MAX_FPS = 120  # the rate only sets the duration: num_frames / fps
NEEDS_AUDIO = True
STREAMS = False
ENCODE_COST = 0.0  # no frames to encode


class Options(FormatOptions):
    """`"wav": {"fps": int}`: the duration is that of the frames at this rate."""


def encode(clip: Clip, options: Options) -> bytes:
    soundtrack = clip.soundtrack()
    if soundtrack is None:
        raise ValueError("this clip has no soundtrack")
    return soundtrack.wav()
