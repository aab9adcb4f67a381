"""A script that builds the handler at module level (no `if __name__ == "__main__":`, as Hugging
Face's custom-handler docs write them) against the same script with the guard, run alternately
as fresh processes on the tiny model: wall time, how often each ran, and the ratio.

    .venv/bin/python benchmarks/plain_script.py [--repeat 3] [--frames 48]

Each script builds the handler, then answers one GIF and one MP4 request; the GIF goes through
the encoders' worker processes (VIDEO_ENCODE_THREADS=2).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines import tiny  # noqa: E402
from video_endpoint import settings  # noqa: E402

BODY = """
import sys
sys.path.insert(0, {root!r})
with open({runs!r}, "a") as runs:
    runs.write("run\\n")
from handler import EndpointHandler
handler = EndpointHandler({model!r})
small = {{"prompt": "a plain script", "num_frames": {frames}, "height": 256, "width": 256, "num_inference_steps": 2}}
for outputs in (["gif"], ["mp4"]):
    assert handler({{"inputs": {{**small, "outputs": outputs}}}})["ok"]
"""


def script(guarded: bool, **fields: object) -> str:
    body = BODY.format(**fields)
    if not guarded:
        return body
    lines = body.strip().splitlines()
    return "def main():\n" + "".join(f"    {line}\n" for line in lines) + 'if __name__ == "__main__":\n    main()\n'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args()
    import numpy
    import torch

    print(f"machine: {platform.machine()} cpus={os.cpu_count()}; python {platform.python_version()}, "
          f"torch {torch.__version__}, numpy {numpy.__version__}")
    model = str(tiny.ensure(settings.tiny_model_dir()))
    times: dict[str, list[float]] = {"guarded": [], "plain": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.repeat):
            for kind in times:
                runs = Path(folder, f"{kind}-{round_}.runs")
                path = Path(folder, f"{kind}.py")
                path.write_text(script(kind == "guarded", root=str(ROOT), runs=str(runs), model=model,
                                       frames=args.frames))
                started = time.perf_counter()
                done = subprocess.run([sys.executable, str(path)], cwd=folder, capture_output=True, text=True,
                                      env={**os.environ, "VIDEO_ENCODE_THREADS": "2"})
                times[kind].append(time.perf_counter() - started)
                count = runs.read_text().count("run") if runs.exists() else 0
                tracebacks = done.stderr.count("Traceback")
                print(f"{kind:8s} round {round_}: {times[kind][-1]:6.2f} s, script ran {count}x, "
                      f"exit {done.returncode}, {tracebacks} traceback(s)")
    plain, guarded = statistics.median(times["plain"]), statistics.median(times["guarded"])
    print(f"median: plain {plain:.2f} s, guarded {guarded:.2f} s, plain / guarded = {plain / guarded:.3f}")


if __name__ == "__main__":
    main()
