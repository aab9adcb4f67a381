"""What every format shares: the clip it encodes and the options every format accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MAX_FPS = 120


@dataclass(frozen=True)
class Clip:
    """The frames of one answer, converted to uint8 once and shared by every encoder."""

    frames: np.ndarray
    """`(F, H, W, 3)` uint8, RGB, C-contiguous."""
    fps: int
    """Playback rate for this output (the format's own `fps` option, else the request's)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """prompt, seed, mode, ...: written by formats that carry metadata (ZIP's manifest)."""

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
