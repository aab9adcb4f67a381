"""How the encode stage's cores are best shared between formats: GIF, WebM, MP4 and ZIP (quality
`good`) encoded at once from one clip, the cores split by `encoders.cores.share` with today's
`ENCODE_COST` weights and with other weights, in one run, alternated.

    .venv/bin/python benchmarks/encode_shares.py [--frames 121 --height 512 --width 768 --repeat 5
                                                  --weights gif=1,webm=4.8,mp4=2.8,zip=1 ...]

Each `--weights` is one candidate (formats not named keep today's weight). The clip is
`tests/media.natural_clip`. Pin the run with `taskset` to measure a given number of cores; the
split depends on the cores this process may use (`encoders.cores.available`).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoders import cores  # noqa: E402
from encoders.base import Clip  # noqa: E402
from encoders.registry import FORMATS  # noqa: E402
from tests.media import natural_clip  # noqa: E402

NAMES = ("gif", "webm", "mp4", "zip")
SETTLE_S = 0.3  # a pause before each timed run: OpenBLAS's threads spin for 0.1 s after a product


def parse_weights(text: str) -> dict[str, float]:
    weights = {name: float(FORMATS[name].ENCODE_COST) for name in NAMES}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name not in weights:
            raise SystemExit(f"--weights: unknown format {name!r}; one of {', '.join(NAMES)}")
        weights[name] = float(value)
    return weights


def encode_all(frames, shares: dict[str, int]) -> dict[str, int]:
    """Every format at once, `shares[name]` cores each; the bytes of each."""
    with ThreadPoolExecutor(len(shares)) as pool:
        futures = {name: pool.submit(FORMATS[name].encode, Clip(frames, 24, threads=threads),
                                     FORMATS[name].Options()) for name, threads in shares.items()}
        return {name: len(future.result()) for name, future in futures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--weights", action="append", default=[], help="a candidate, e.g. webm=4.8,mp4=2.8")
    args = parser.parse_args()
    frames = natural_clip(args.frames, args.height, args.width)
    encode_all(frames[:4], dict.fromkeys(NAMES, cores.available()))  # starts the GIF's worker processes
    candidates = {"today": {name: float(FORMATS[name].ENCODE_COST) for name in NAMES}}
    candidates.update({text: parse_weights(text) for text in args.weights})
    shares = {label: cores.share(cores.available(), weights) for label, weights in candidates.items()}
    times: dict[str, list[float]] = {label: [] for label in candidates}
    for _ in range(args.repeat):
        for label in candidates:  # alternated, so that the machine's drift hits each alike
            time.sleep(SETTLE_S)
            started = time.perf_counter()
            encode_all(frames, shares[label])
            times[label].append(time.perf_counter() - started)
    print(f"machine: {platform.machine()}, {cores.available()} cores available; python {platform.python_version()}; "
          f"natural clip {args.frames}x{args.width}x{args.height}; median of {args.repeat}\n")
    print("| weights | cores (gif, webm, mp4, zip) | all four s | / today |")
    print("|---|---|---|---|")
    today = statistics.median(times["today"])
    for label, weights in candidates.items():
        median = statistics.median(times[label])
        shown = ", ".join(f"{name} {weights[name]:g}" for name in NAMES)
        split = ", ".join(str(shares[label][name]) for name in NAMES)
        print(f"| {shown}{' (today)' if label == 'today' else ''} | {split} | {median:.3f} | {median / today:.3f}x |")


if __name__ == "__main__":
    main()
