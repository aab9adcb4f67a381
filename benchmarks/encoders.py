"""Today's encoders beside those of a baseline commit, on the same clips, in one run, pinned to
1 and then 2 cores (`taskset`).

    .venv/bin/python benchmarks/encoders.py [--frames 121 --height 512 --width 768 --fps 24
                                             --repeat 3 --cores 1,2 --baseline c59dfbd]

Clips: `natural` (tests/media.py `natural_clip`: textured sky and ground, a panning camera,
moving soft-edged shapes, a change of light, sensor noise) and `noise` (uniform random pixels,
what a random-weight model makes: the worst case of every codec). The baseline's `encoders/`
is read from git (`git show <commit>:encoders/...`) and imported as a package of its own, so
both run in one process and each pair of timings alternates (baseline, current, baseline, ...)
so that the machine's drift hits both alike. Each row: median wall time, bytes and the PSNR of
the decoded frames against the source. "all four" encodes GIF, WebM, MP4 and ZIP (quality
`good`) at once, as the encode stage does: the baseline one thread per format with its own
thread counts, the current one with the cores shared by `encoders.cores.share`. The ffmpeg rows
compare our WebM/MP4 with the same ffmpeg command (same thread options) started directly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoders import _ffmpeg, cores, gif, mp4, webm  # noqa: E402
from encoders import zip as zip_format  # noqa: E402
from encoders.base import Clip  # noqa: E402
from tests.media import decode_gif, decode_video, decode_zip, natural_clip, psnr  # noqa: E402

FORMATS = ("gif", "webm", "mp4", "zip")
DEFAULT_BASELINE = "c59dfbd"  # the encoders before they used every core
# a pause before each timed run, so that none pays for the one before: OpenBLAS's threads spin
# for 0.1 s after a product (the baseline's GIF palette matching wakes them)
SETTLE_S = 0.2


def load_baseline(commit: str, into: Path) -> dict[str, types.ModuleType]:
    """The baseline's encoder modules, as the package `baseline_encoders` (imports renamed)."""
    package = into / "baseline_encoders"
    package.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{commit}:encoders"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            text = subprocess.run(["git", "show", f"{commit}:encoders/{name}"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout
            text = text.replace("from encoders", "from baseline_encoders").replace(
                "import encoders", "import baseline_encoders")
            (package / name).write_text(text)
    sys.path.insert(0, str(into))
    return {name: importlib.import_module(f"baseline_encoders.{name}") for name in (*FORMATS, "base")}


def timed_pair(first: Callable[[], bytes], second: Callable[[], bytes], repeat: int):
    """Median seconds of each, run alternately, and each one's last result."""
    times: tuple[list[float], list[float]] = ([], [])
    results: list[bytes] = [b"", b""]
    for _ in range(repeat):
        for index, fn in enumerate((first, second)):
            time.sleep(SETTLE_S)
            started = time.perf_counter()
            results[index] = fn()
            times[index].append(time.perf_counter() - started)
    return statistics.median(times[0]), results[0], statistics.median(times[1]), results[1]


def decoded(name: str, data: bytes) -> np.ndarray:
    if name == "gif":
        return decode_gif(data).frames
    if name == "zip":
        return decode_zip(data).frames
    return decode_video(data).frames


def all_at_once(jobs: dict[str, Callable[[], bytes]]) -> bytes:
    with ThreadPoolExecutor(len(jobs)) as pool:
        return b"".join(future.result() for future in [pool.submit(job) for job in jobs.values()])


def bench_clip(label: str, frames: np.ndarray, fps: int, baseline: dict[str, types.ModuleType], repeat: int) -> None:
    threads = cores.available()
    current = {"gif": gif, "webm": webm, "mp4": mp4, "zip": zip_format}
    old_clip = baseline["base"].Clip(frames, fps, {"seed": 0})
    shares = cores.share(threads, {name: current[name].ENCODE_COST for name in FORMATS})

    def old_job(name):
        module = baseline[name]
        return lambda: module.encode(old_clip, module.Options())

    def new_job(name, cores_given=threads):
        module = current[name]
        return lambda: module.encode(Clip(frames, fps, {"seed": 0}, threads=cores_given), module.Options())

    print(f"\n{label} clip, {len(frames)}x{frames.shape[2]}x{frames.shape[1]} at {fps} fps, {threads} core(s); "
          f"median of {repeat}\n")
    print("| output | baseline s | current s | current / baseline | baseline bytes | current bytes "
          "| baseline PSNR dB | current PSNR dB |")
    print("|---|---|---|---|---|---|---|---|")
    for name in FORMATS:
        old_s, old_data, new_s, new_data = timed_pair(old_job(name), new_job(name), repeat)
        print(f"| {name}{' good' if name in ('webm', 'mp4') else ''} alone | {old_s:.3f} | {new_s:.3f} "
              f"| {new_s / old_s:.2f}x | {len(old_data):,} | {len(new_data):,} "
              f"| {psnr(decoded(name, old_data), frames):.2f} | {psnr(decoded(name, new_data), frames):.2f} |")
    old_s, _, new_s, _ = timed_pair(lambda: all_at_once({name: old_job(name) for name in FORMATS}),
                                    lambda: all_at_once({name: new_job(name, shares[name]) for name in FORMATS}),
                                    repeat)
    shared = ", ".join(f"{name} {count}" for name, count in shares.items())
    print(f"| all four at once (current cores: {shared}) | {old_s:.3f} | {new_s:.3f} | {new_s / old_s:.2f}x "
          f"| | | | |")

    print("\n| ffmpeg, quality good | ours s | same command run directly s | ours / direct |")
    print("|---|---|---|---|")
    for module in (webm, mp4):
        clip = Clip(frames, fps, threads=threads)
        options = module.Options()

        def direct(module=module, clip=clip, options=options) -> bytes:
            with tempfile.TemporaryDirectory() as workdir:
                out = os.path.join(workdir, "out" + module.EXT)
                args = module.ffmpeg_args(options, clip)
                args.pop("audio_args")
                subprocess.run(_ffmpeg.command(clip, out, **args), input=frames.tobytes(), check=True)
                return Path(out).read_bytes()

        ours, _, by_hand, _ = timed_pair(lambda m=module, c=clip, o=options: m.encode(c, o), direct, repeat)
        print(f"| {module.NAME} | {ours:.3f} | {by_hand:.3f} | {ours / by_hand:.2f}x |")


def child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        baseline = load_baseline(args.baseline, Path(workdir))
        warm = natural_clip(8, 32, 48)  # starts the GIF's worker processes, as the handler does at start-up
        gif.encode(Clip(warm, args.fps), gif.Options())
        for label in ("natural", "noise"):
            bench_clip(label, np.load(Path(args.clips) / f"{label}.npy"), args.fps, baseline, args.repeat)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", default="1,2", help="core counts to pin the runs to, e.g. 1,2,16")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="the commit whose encoders are compared")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clips", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import imageio_ffmpeg

    allowed = sorted(os.sched_getaffinity(0))
    ffmpeg_version = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-version"], capture_output=True,
                                    text=True).stdout.split("\n")[0]
    print(f"machine: {platform.machine()}, {len(allowed)} cores available ({platform.processor() or 'cpu'}); "
          f"python {platform.python_version()}, numpy {np.__version__}, pillow {Image.__version__}; "
          f"{ffmpeg_version}; baseline: encoders at {args.baseline}")
    with tempfile.TemporaryDirectory() as clips:
        np.save(Path(clips) / "natural.npy", natural_clip(args.frames, args.height, args.width))
        noise = np.random.default_rng(0).integers(0, 256, (args.frames, args.height, args.width, 3), np.uint8)
        np.save(Path(clips) / "noise.npy", noise)
        for count in (int(c) for c in args.cores.split(",")):
            if count > len(allowed):
                print(f"\n(skipped {count} cores: only {len(allowed)} available)")
                continue
            pinned = ",".join(map(str, allowed[:count]))
            print(f"\n## pinned to {count} core(s) (taskset -c {pinned})", flush=True)
            subprocess.run(["taskset", "-c", pinned, sys.executable, __file__, "--child", "--clips", clips,
                            "--fps", str(args.fps), "--repeat", str(args.repeat), "--baseline", args.baseline],
                           check=True)


if __name__ == "__main__":
    main()
