"""Our encoders beside the reference commands, on one deterministic clip, in one run.

    .venv/bin/python benchmarks/encoders.py [--frames 48 --size 512 --fps 12 --repeat 3]

The clip (tests/media.py `synthetic_clip`) has smooth gradients, moving soft-edged shapes and
mild noise. Each row: median wall time, bytes, PSNR of the decoded frames against the source
(GIF also after a sigma-1 blur, which forgives dithering the eye barely sees), playback length.
References: ffmpeg's two-pass palette GIF (palettegen stats_mode=diff + paletteuse bayer 5), and
for WebM/MP4 the very ffmpeg command our encoder runs, started directly on a bytes copy of the clip.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import imageio_ffmpeg
import torch

from encoders import _ffmpeg, gif, mp4, webm
from encoders import zip as zip_format
from encoders.base import Clip
from tests.media import decode_gif, decode_video, decode_zip, psnr, synthetic_clip


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def timed_pair(first, second, repeat):
    """Both timed alternately (first, second, first, ...), so machine drift hits both alike."""
    times: tuple[list, list] = ([], [])
    results = [None, None]
    for _ in range(repeat):
        for index, fn in enumerate((first, second)):
            started = time.perf_counter()
            results[index] = fn()
            times[index].append(time.perf_counter() - started)
    return statistics.median(times[0]), results[0], statistics.median(times[1]), results[1]


def blurred_psnr(a, b):
    blur = ImageFilter.GaussianBlur(1)
    a = np.stack([np.asarray(Image.fromarray(x).filter(blur)) for x in a])
    b = np.stack([np.asarray(Image.fromarray(x).filter(blur)) for x in b])
    return psnr(a, b)


def ffmpeg_direct(clip, suffix, args):
    with tempfile.TemporaryDirectory() as workdir:
        out = os.path.join(workdir, "out" + suffix)
        subprocess.run(_ffmpeg.command(clip, out, **args), input=clip.frames.tobytes(), check=True)
        return Path(out).read_bytes()


def ffmpeg_palette_gif(clip):
    with tempfile.TemporaryDirectory() as workdir:
        out = os.path.join(workdir, "out.gif")
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo",
                        "-pix_fmt", "rgb24", "-s", f"{clip.width}x{clip.height}", "-framerate", str(clip.fps),
                        "-i", "pipe:0", "-filter_complex",
                        "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=5",
                        "-y", out], input=clip.frames.tobytes(), check=True)
        return Path(out).read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames = synthetic_clip(args.frames, args.size, args.size)
    clip = Clip(frames, args.fps, {"seed": 0})
    print(f"machine: {platform.machine()} cpus={os.cpu_count()}; python {platform.python_version()}, "
          f"numpy {np.__version__}, pillow {Image.__version__}, torch {torch.__version__}")
    print(f"clip: {args.frames} frames, {args.size}x{args.size}, {args.fps} fps "
          f"(plays {args.frames / args.fps:.2f} s); median of {args.repeat} "
          f"({args.repeat + 2} for the ffmpeg pairs, each pair timed alternately)\n")
    print("| method | time s | bytes | PSNR dB | blurred PSNR dB | plays s |")
    print("|---|---|---|---|---|---|")

    def row(name, seconds, data, decoded_frames, plays, blurred=None):
        blur = f"{blurred:.1f}" if blurred is not None else ""
        print(f"| {name} | {seconds:.3f} | {len(data):,} | {psnr(decoded_frames, frames):.1f} | {blur} | {plays:.2f} |")

    seconds, data, ref_seconds, ref_data = timed_pair(lambda: gif.encode(clip, gif.Options()),
                                                      lambda: ffmpeg_palette_gif(clip), args.repeat)
    ours = decode_gif(data)
    row("GIF, ours (octree + k-means palette, nearest, no dither)", seconds, data, ours.frames,
        sum(ours.durations_ms) / 1000, blurred_psnr(ours.frames, frames))
    seconds, data = ref_seconds, ref_data
    ref = decode_gif(data)
    row("GIF, ffmpeg palettegen(diff) + paletteuse(bayer 5)", seconds, data, ref.frames,
        sum(ref.durations_ms) / 1000, blurred_psnr(ref.frames, frames))
    for module in (webm, mp4):
        for quality in ("fast", "good", "best"):
            options = module.Options(quality=quality)
            seconds, data, direct, direct_data = timed_pair(
                lambda m=module, o=options: m.encode(clip, o),
                lambda m=module, o=options: ffmpeg_direct(clip, m.EXT, m.ffmpeg_args(o)), args.repeat + 2)
            video = decode_video(data)
            row(f"{module.NAME.upper()} {quality}, ours", seconds, data, video.frames, video.duration_s)
            row(f"{module.NAME.upper()} {quality}, same ffmpeg command run directly (ours/direct = "
                f"{seconds / direct:.2f}x)", direct, direct_data, decode_video(direct_data).frames,
                video.duration_s)
    seconds, data = timed(lambda: zip_format.encode(clip, zip_format.Options()), args.repeat)
    row("ZIP, PNG level 1 stored, thread pool", seconds, data, decode_zip(data).frames, 0.0)

    video = torch.rand(1, args.frames, 3, args.size, args.size)
    convert, _ = timed(lambda: video.clone().mul_(255).round_().clamp_(0, 255).to(torch.uint8)
                       .permute(0, 1, 3, 4, 2).contiguous().numpy(), args.repeat)
    print(f"\nfloat32 frames -> uint8 (whole clip, CPU, includes a clone): {convert:.3f} s")

    jobs = {"gif": (gif, gif.Options()), "webm": (webm, webm.Options()), "mp4": (mp4, mp4.Options()),
            "zip": (zip_format, zip_format.Options())}
    alone = {name: timed(lambda m=m, o=o: m.encode(clip, o), 1)[0] for name, (m, o) in jobs.items()}

    def together():
        with ThreadPoolExecutor(len(jobs)) as pool:
            return [f.result() for f in [pool.submit(m.encode, clip, o) for m, o in jobs.values()]]

    both, _ = timed(together, args.repeat)
    print(f"all four formats (quality good) concurrently: {both:.2f} s; one after another: "
          f"{sum(alone.values()):.2f} s; slowest alone: {max(alone.values()):.2f} s ({max(alone, key=alone.get)})")


if __name__ == "__main__":
    main()
