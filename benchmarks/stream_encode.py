"""Encoding while the VAE decodes (`VIDEO_STREAM_ENCODE`) against encoding once it has decoded, on
this machine, in one run.

    .venv/bin/python benchmarks/stream_encode.py [--frames 9 --height 256 --width 384 --repeat 2
                                                  --device cpu]

The VAE is Wan 2.1's (`AutoencoderKLWan` at its default config, the checkpoint's, 127 M
parameters) with random weights, decoding random latents: it calls its decoder once per latent
frame, the pattern streaming needs. The decoder's output goes through the handler's own hook
(`pipelines.model.DecodedChunks`) into `encoders.base.ArrivingFrames`, read by the formats that
stream (MP4, WebM, ZIP at quality `good`, the cores shared as the encode stage shares them).
Rows, each the median of `--repeat` runs, the two ways alternating:
- decode alone, and each encode alone on the decoded frames;
- "after": decode, then encode (what the handler does with streaming off);
- "streamed": the encoders started first and fed by the hook (streaming on).
The gain can be at most the encode's time; on a CPU the VAE and the encoders share the cores.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoders import cores  # noqa: E402
from encoders.base import ArrivingFrames, Clip  # noqa: E402
from encoders.registry import FORMATS  # noqa: E402
from pipelines.base import GenerationJob  # noqa: E402
from pipelines.model import DecodedChunks, frames_to_uint8  # noqa: E402

STREAMING = ("mp4", "webm", "zip")
FPS = 16


def wan_vae(device: torch.device) -> SimpleNamespace:
    """What the hook needs of a pipeline: its VAE and its video processor."""
    from diffusers import AutoencoderKLWan
    from diffusers.video_processor import VideoProcessor

    torch.manual_seed(0)
    vae = AutoencoderKLWan().to(device).eval()
    return SimpleNamespace(vae=vae, video_processor=VideoProcessor(vae_scale_factor=8))


def encode_all(frames: np.ndarray, names: tuple[str, ...], arriving: ArrivingFrames | None) -> dict[str, bytes]:
    """The formats at once, on threads, the cores shared by their work (as the encode stage does)."""
    shares = cores.share(cores.available(), {name: FORMATS[name].ENCODE_COST for name in names})
    out: dict[str, bytes] = {}

    def one(name: str) -> None:
        clip = Clip(frames, FPS, threads=shares[name], arriving=arriving)
        out[name] = FORMATS[name].encode(clip, FORMATS[name].Options())

    threads = [threading.Thread(target=one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def decode(pipe: SimpleNamespace, latents: torch.Tensor, job: GenerationJob,
           arriving: ArrivingFrames | None = None) -> np.ndarray:
    """The frames as the handler gets them, streamed into `arriving` where given."""
    with torch.no_grad(), DecodedChunks.hooked(pipe, job, arriving) as chunks:
        video = pipe.vae.decode(latents, return_dict=False)[0]
        video = pipe.video_processor.postprocess_video(video, output_type="pt")
    if arriving is not None:
        assert chunks is not None and chunks.complete(video), "the hook did not stream every frame"
        arriving.complete()
        return arriving.frames
    return frames_to_uint8(video, job.returned_frames)


def median_s(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=9, help="4k+1 frames")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"machine: {platform.machine()}, {cores.available()} cores available, device {device}; python "
          f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    pipe = wan_vae(device)
    job = GenerationJob(prompt="", negative_prompt="", image=None, height=args.height, width=args.width,
                        num_frames=args.frames, fps=FPS, num_inference_steps=1, guidance_scale=1.0, seed=0)
    latents = torch.randn(1, 16, (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8,
                          generator=torch.Generator().manual_seed(0)).to(device)
    decode(pipe, latents, job)  # a first decode: allocations, kernels
    decode_s, frames = median_s(lambda: decode(pipe, latents, job), args.repeat)
    assert isinstance(frames, np.ndarray)
    print(f"\nWan 2.1 VAE, random weights, {args.frames}x{args.width}x{args.height}: decode alone {decode_s:.3f} s")
    print("\n| outputs | encode alone s | decode, then encode s | streamed s | streamed / after | saved s |")
    print("|---|---|---|---|---|---|")
    for names in [("mp4",), ("webm",), ("zip",), STREAMING]:
        encode_s, files = median_s(lambda names=names: encode_all(frames, names, None), args.repeat)
        after: list[float] = []
        streamed: list[float] = []
        for _ in range(args.repeat):  # alternated, so that drift hits both alike
            started = time.perf_counter()
            encode_all(decode(pipe, latents, job), names, None)
            after.append(time.perf_counter() - started)
            started = time.perf_counter()
            arriving = ArrivingFrames(np.empty_like(frames))
            result: dict[str, dict[str, bytes]] = {}
            reader = threading.Thread(target=lambda result=result, names=names, arriving=arriving: result.update(
                files=encode_all(arriving.frames, names, arriving)))
            reader.start()
            decode(pipe, latents, job, arriving)
            reader.join()
            streamed.append(time.perf_counter() - started)
        assert isinstance(files, dict) and set(result["files"]) == set(files)
        after_s, streamed_s = statistics.median(after), statistics.median(streamed)
        print(f"| {' + '.join(names)} | {encode_s:.3f} | {after_s:.3f} | {streamed_s:.3f} | "
              f"{streamed_s / after_s:.3f}x | {after_s - streamed_s:+.3f} |", flush=True)


if __name__ == "__main__":
    main()
