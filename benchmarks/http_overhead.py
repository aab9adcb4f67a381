"""What the HTTP path costs over calling the handler directly: same model, same requests, one run.

    .venv/bin/python benchmarks/http_overhead.py [--repeat 5]

Starts `python -m video_endpoint serve` on a free loopback port with the tiny model, then alternates a direct
`handler(data)` call and the same request over HTTP (JSON body, base64 answer), and prints medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handler import EndpointHandler  # noqa: E402
from pipelines import tiny  # noqa: E402
from video_endpoint import settings  # noqa: E402

REQUESTS = {
    "small gif (64x96, 8 frames, 2 steps)": {"prompt": "x", "height": 64, "width": 96, "num_frames": 8,
                                              "num_inference_steps": 2, "seed": 1},
    "card default gif (512x512, 32 frames, 30 steps)": {"prompt": "x", "seed": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    model_dir = str(tiny.ensure(settings.tiny_model_dir()))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "video_endpoint", "serve", "--model", model_dir,
                               "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "VIDEO_API_TOKEN": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        handler = EndpointHandler(model_dir)
        print(f"machine: {platform.machine()} cpus={os.cpu_count()}, python {platform.python_version()}")
        print(f"{'request':<50}{'direct ms':>11}{'http ms':>11}{'overhead ms':>13}{'ratio':>7}")
        for name, inputs in REQUESTS.items():
            direct, http = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                assert handler({"inputs": inputs})["ok"]
                direct.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                response = httpx.post(url, json={"inputs": inputs}, timeout=300)
                assert response.status_code == 200 and response.json()["ok"]
                http.append((time.perf_counter() - started) * 1000)
            d, h = statistics.median(direct), statistics.median(http)
            print(f"{name:<50}{d:>11.1f}{h:>11.1f}{h - d:>13.1f}{h / d:>7.2f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
