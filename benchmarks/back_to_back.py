"""Four requests sent back to back through the scheduler, on the tiny model: with each answer's
encoding overlapping the next generation (the scheduler's way) against the worker encoding each
answer before it starts the next (`overlap_encoding=False`, the way before the scheduler).
Rounds alternate, in one process; the wall time of the four and the ratio are printed.

    .venv/bin/python benchmarks/back_to_back.py [--rounds 3] [--frames 33] [--size 256]

Each request asks for GIF, WebM and MP4 (encoding costs about what generating does at this size).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines import tiny  # noqa: E402
from video_endpoint import settings  # noqa: E402

REQUESTS = 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    import numpy
    import torch

    from handler import EndpointHandler
    from video_endpoint.scheduler import Scheduler

    print(f"machine: {platform.machine()} cpus={os.cpu_count()}; python {platform.python_version()}, "
          f"torch {torch.__version__}, numpy {numpy.__version__}")
    handler = EndpointHandler(str(tiny.ensure(settings.tiny_model_dir())))
    request = {"prompt": "back to back", "num_frames": args.frames, "height": args.size, "width": args.size,
               "num_inference_steps": args.steps, "outputs": ["gif", "webm", "mp4"]}
    print(f"{REQUESTS} requests of {args.frames} frames {args.size}x{args.size}, {args.steps} steps, "
          "gif+webm+mp4 each (random-weight tiny model)")
    schedulers = {overlap: Scheduler(handler, handler.jobs, handler.webhooks, overlap_encoding=overlap)
                  for overlap in (False, True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(-1, args.rounds):  # round -1 warms up both
        for overlap, scheduler in schedulers.items():
            started = time.perf_counter()
            answers = [scheduler.submit(handler.decode({"inputs": {**request, "seed": n}}))
                       for n in range(REQUESTS)]
            assert all(answer.result().result["ok"] for answer in answers)
            took = time.perf_counter() - started
            if round_ >= 0:
                times[overlap].append(took)
                print(f"{'overlapped' if overlap else 'serial':>10} round {round_}: {took:.2f} s")
    serial, overlapped = statistics.median(times[False]), statistics.median(times[True])
    print(f"median serial {serial:.2f} s, overlapped {overlapped:.2f} s; "
          f"{REQUESTS / serial:.2f} vs {REQUESTS / overlapped:.2f} requests/s")
    print(f"overlapped / serial = {overlapped / serial:.3f}")


if __name__ == "__main__":
    main()
