"""What every format shares: the contract a format module fulfils (`OutputFormat`), the clip it
encodes and the options every format accepts."""

from __future__ import annotations

import functools
import io
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from encoders import cores

MAX_FPS = 120
"""The highest rate any format plays: the bound of the request's `fps`; each format has its own."""


@dataclass(frozen=True)
class Audio:
    """A soundtrack generated with the frames (LTX-2)."""

    samples: np.ndarray
    """`(channels, n)` float32 in [-1, 1]."""
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    def fitted(self, seconds: float) -> Audio:
        """Exactly `seconds` long (to the sample): cut, or padded with silence."""
        length = round(seconds * self.sample_rate)
        samples = self.samples[:, :length]
        if samples.shape[1] < length:
            samples = np.pad(samples, ((0, 0), (0, length - samples.shape[1])))
        return Audio(np.ascontiguousarray(samples, dtype=np.float32), self.sample_rate)

    def wav(self) -> bytes:
        """16-bit PCM WAV (plays everywhere; the standard library writes it)."""
        pcm = (np.clip(self.samples, -1.0, 1.0) * 32767).round().astype("<i2")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(self.channels)
            out.setsampwidth(2)
            out.setframerate(self.sample_rate)
            out.writeframes(pcm.T.tobytes())  # interleaved: one sample of each channel per frame
        return buffer.getvalue()


class FramesWithdrawn(RuntimeError):
    """The frames a streaming encoder was reading were withdrawn: the generation failed, or its
    frames will be encoded again from the finished clip."""


class ArrivingFrames:
    """A clip's frames while the VAE still decodes them: the array they are written into, in order,
    how many are in, and whether they are final. The producer writes `frames[:n]` (the array
    `open()` returns) then calls `arrived(n)`; readers take them with `batches()`, whose last
    batch waits for `complete()`."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames
        self.count = 0
        self._state = "arriving"  # then "complete" or "withdrawn"
        self._changed = threading.Condition()

    def open(self) -> np.ndarray:
        """The array the producer writes the frames into."""
        return self.frames

    def arrived(self, count: int) -> None:
        """`frames[:count]` are written."""
        with self._changed:
            self.count = count
            self._changed.notify_all()

    def complete(self) -> None:
        """Every frame is written, and final."""
        self._end("complete")

    def withdraw(self) -> None:
        """The frames so far are void: readers raise FramesWithdrawn."""
        self._end("withdrawn")

    def _end(self, state: str) -> None:
        with self._changed:
            if self._state == "arriving":
                self._state = state
                if state == "complete":
                    self.count = len(self.frames)
            self._changed.notify_all()

    def settled(self) -> None:
        """Wait until the frames are complete or withdrawn."""
        with self._changed:
            self._changed.wait_for(lambda: self._state != "arriving")

    def _beyond(self, start: int) -> bool:
        return self._state != "arriving" or self.count > start

    def batches(self) -> Iterator[np.ndarray]:
        """Consecutive runs of frames as they arrive, the last once they are complete; raises
        FramesWithdrawn where they are withdrawn."""
        start = 0
        while True:
            with self._changed:
                self._changed.wait_for(functools.partial(self._beyond, start))
                if self._state == "withdrawn":
                    raise FramesWithdrawn("the frames were withdrawn")
                count, done = self.count, self._state == "complete"
            if count > start:
                yield self.frames[start:count]
                start = count
            elif done:
                return


@dataclass(frozen=True)
class Clip:
    """The frames of one answer, converted to uint8 once and shared by every encoder."""

    frames: np.ndarray
    """`(F, H, W, 3)` uint8, RGB, C-contiguous."""
    fps: int
    """Playback rate for this output (the format's own `fps` option, else the request's)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """prompt, seed, mode, ...: written by formats that carry metadata (ZIP's manifest)."""
    audio: Audio | None = None
    """The soundtrack, for the formats that carry one; None for a model without audio."""
    threads: int = field(default_factory=cores.available)
    """Cores this encoder may keep busy (threads, ffmpeg's `-threads`, worker processes); the
    encode stage divides its budget between the formats it encodes at once."""
    arriving: ArrivingFrames | None = None
    """Set while `frames` are still being decoded (a format that `STREAMS`): read them with `batches`."""

    def batches(self) -> Iterator[np.ndarray]:
        """The frames in consecutive runs as the VAE decodes them (all at once for a finished clip)."""
        if self.arriving is None:
            yield self.frames
        else:
            yield from self.arriving.batches()

    def settled(self) -> None:
        """Wait until every frame is decoded (at once for a finished clip)."""
        if self.arriving is not None:
            self.arriving.settled()

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps

    def soundtrack(self) -> Audio | None:
        """The audio exactly as long as this clip plays (padded or cut), or None."""
        return None if self.audio is None else self.audio.fitted(self.seconds)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


class FormatOptions(BaseModel):
    """Options every format accepts under its own key, e.g. `"gif": {"fps": 8}`."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)

    fps: int | None = Field(
        None, ge=1, le=MAX_FPS,
        description="Playback rate of this output only; defaults to the request's `fps`.",
    )


class VideoOptions(FormatOptions):
    """Options of the ffmpeg video formats: `{"fps": int, "quality": "fast" | "good" | "best"}`."""

    quality: Literal["fast", "good", "best"] = Field(
        "good", description="Encoder preset: fast = quickest encode, best = highest quality.")


@runtime_checkable
class OutputFormat(Protocol):
    """What a format module provides; `encoders/webm.py` is the model to copy. The registry checks
    each module against it at import, and the type checker where the formats are used."""

    @property
    def NAME(self) -> str:
        """The name in `outputs`, the key of its options object and of `<NAME>_base64`."""

    @property
    def MIME(self) -> str:
        """Its media type (the local server's raw answers)."""

    @property
    def EXT(self) -> str:
        """Its file extension, with the dot (the CLI picks the format by it)."""

    @property
    def MAX_FPS(self) -> int:
        """The highest playback rate it can carry; a higher `fps` is refused."""

    @property
    def NEEDS_AUDIO(self) -> bool:
        """True for an audio-only format: refused (`unsupported`) for a model that makes no sound."""

    @property
    def STREAMS(self) -> bool:
        """Whether `encode` reads the frames with `Clip.batches()`, so that it can start while the VAE
        still decodes the later ones; the others are given finished clips."""

    @property
    def ENCODE_COST(self) -> float:
        """Its weight when formats encoded at once share the cores (`cores.share`): about its work
        at the default quality, relative to ZIP's (1.0). What matters is the split it gives;
        benchmarks/encode_shares.py times the four formats at once with other weights beside these."""

    @property
    def Options(self) -> type[FormatOptions]:
        """Its options under its own key in the request (a `FormatOptions` subclass)."""

    def encode(self, clip: Clip, options: Any) -> bytes:
        """The file's bytes. `options` is an instance of the module's own `Options`."""
