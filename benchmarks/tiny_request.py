"""Wall time of the card's default request on the tiny random-weight model, split by stage.

    .venv/bin/python benchmarks/tiny_request.py [--repeat 3] [--outputs gif webm zip]

Prints the machine and versions, then the median per stage over the repeats. The tiny model's
denoising is nearly free; what this measures is the handler's own CPU work around the model
(VAE decode at full size, uint8 conversion, encoders, base64).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusers
import torch

from handler import EndpointHandler
from pipelines import tiny
from video_endpoint import settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--outputs", nargs="+", default=["gif"])
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"torch_threads={torch.get_num_threads()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}")
    started = time.perf_counter()
    handler = EndpointHandler(str(tiny.ensure(settings.tiny_model_dir())))
    print(f"handler start-up (tiny model): {(time.perf_counter() - started) * 1000:.0f} ms")
    runs = []
    for seed in range(args.repeat):
        result = handler({"inputs": {"prompt": "a cyberpunk street in rain, neon lights",
                                     "outputs": args.outputs, "seed": seed}})
        assert result["ok"], result
        runs.append(result["diagnostics"]["timing_ms"])
    d = result["diagnostics"]
    print(f"request: {d['width']}x{d['height']}, {d['num_frames']} frames ({d['generated_frames']} generated), "
          f"{d['num_inference_steps']} steps, guidance {d['guidance_scale']}, outputs {args.outputs}")
    print(f"{'stage':<22}{'median ms':>12}{'share':>8}")
    total = statistics.median(r["total"] for r in runs)
    for stage in runs[0]:
        value = statistics.median(r.get(stage, 0.0) for r in runs)
        print(f"{stage:<22}{value:>12.1f}{value / total:>8.0%}")


if __name__ == "__main__":
    main()
