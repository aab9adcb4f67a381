"""VAE tiling chosen per request, from what the GPU has free and what decoding has cost so far.

Decoding all frames at once is the fastest way and the most memory-hungry step of a request: the
decoder's full-resolution activations grow with frames x height x width, and on a long clip they
outgrow what the transformer needed. Tiled decoding (`vae.enable_tiling()`) works in overlapping
spatial (and, for some VAEs, temporal) tiles: slower, bounded memory. Slicing is not used: it
splits the batch, and a request is one video.

The mode comes in as `SpeedSettings.vae_tiling`:
- `auto`: on CUDA, each untiled decode's memory is measured (its peak above what was allocated
  before it) per output pixel-frame; a request whose frames x pixels would need more than
  `HEADROOM` of the free GPU memory at that rate decodes in tiles. Before any measurement (the
  warm-up request makes one), a decode that runs out of memory is retried once in tiles, and that
  size counts as not fitting from then on. On CPU nothing is tiled (memory is not the limit there).
- `on` / `off`: always / never tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

HEADROOM = 0.9  # of the free memory a decode may plan to use: the allocator fragments


def free_gpu_bytes(device: torch.device) -> int | None:
    """Memory a decode can still get: free on the device plus what PyTorch's cache holds unused."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


@dataclass
class VaeTiling:
    mode: str = "auto"
    """auto, on or off"""
    bytes_per_pixel_frame: float | None = None
    """the most an untiled decode has needed per output pixel-frame (auto mode learns it)"""

    def decide(self, pixel_frames: int, free_bytes: int | None) -> bool:
        """Whether a decode of `pixel_frames` (frames x height x width) runs in tiles."""
        if self.mode != "auto":
            return self.mode == "on"
        if free_bytes is None or self.bytes_per_pixel_frame is None:
            return False
        return self.bytes_per_pixel_frame * pixel_frames > HEADROOM * free_bytes

    def measured(self, pixel_frames: int, decode_bytes: int) -> None:
        """An untiled decode of `pixel_frames` needed `decode_bytes` (peak above its start)."""
        rate = decode_bytes / pixel_frames
        self.bytes_per_pixel_frame = max(rate, self.bytes_per_pixel_frame or 0.0)

    def did_not_fit(self, pixel_frames: int, free_bytes: int | None) -> None:
        """An untiled decode of `pixel_frames` ran out of memory with `free_bytes` free."""
        if free_bytes is not None:
            self.measured(pixel_frames, free_bytes)  # it needed more than that


def set_tiling(vae: Any, tiled: bool) -> None:
    if tiled == getattr(vae, "use_tiling", False):
        return
    if tiled:
        vae.enable_tiling()
    else:
        vae.disable_tiling()
