"""What monitoring costs, on the tiny model: counting one answered request (`metrics.answered`, the
histograms included) and one refusal, next to a small request's own time through the handler; one
log line as JSON next to the same line as text; and a scrape of `GET /metrics` on the local server,
with the jobs kept in memory and, where `redis-server` is installed, in Redis.

    .venv/bin/python benchmarks/metrics.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.local_server import start_server  # noqa: E402
from pipelines import tiny  # noqa: E402
from video_endpoint import metrics, server_logs, settings  # noqa: E402

TOKEN = "benchmark-token"
INPUTS = {"prompt": "x", "height": 32, "width": 32, "num_frames": 9, "num_inference_steps": 2, "outputs": ["gif"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median_s(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def scrape_times(model_dir: str, repeat: int, env: dict[str, str]) -> tuple[float, int]:
    """The median of `repeat` scrapes of a started server (after one request and one job), and the size."""
    server, url = start_server(model_dir, {"VIDEO_API_TOKEN": TOKEN, **env})
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
            http.post("/", json={"inputs": INPUTS}).raise_for_status()
            http.post("/jobs", json={"inputs": INPUTS}).raise_for_status()
            size = len(http.get("/metrics").content)
            return median_s(lambda: http.get("/metrics").raise_for_status(), repeat), size
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    from importlib.metadata import version

    import torch

    from video_endpoint.endpoint import EndpointHandler

    print(f"machine: {platform.machine()} cpus={os.cpu_count()}; python {platform.python_version()}, "
          f"torch {torch.__version__}, prometheus-client {version('prometheus-client')}")
    model_dir = str(tiny.ensure(settings.tiny_model_dir()))
    handler = EndpointHandler(model_dir)
    answer = handler({"inputs": INPUTS})
    request_s = median_s(lambda: handler({"inputs": INPUTS}), max(3, args.repeat // 20))
    counting_s = median_s(lambda: metrics.answered("sync", answer), args.repeat)
    refusing_s = median_s(lambda: metrics.refused("sync", {"type": "invalid_request", "field": "width"}),
                          args.repeat)
    print(f"{'a small request through the handler':>44}: median {request_s * 1000:8.3f} ms")
    print(f"{'counting its answer (metrics.answered)':>44}: median {counting_s * 1e6:8.1f} us "
          f"({counting_s / request_s:.4%} of the request)")
    print(f"{'counting a refusal (metrics.refused)':>44}: median {refusing_s * 1e6:8.1f} us")

    record = logging.getLogger("video_endpoint.scheduler").makeRecord(
        "video_endpoint.scheduler", logging.INFO, __file__, 1, "job %s: succeeded after %.2f s", ("j1", 1.0), None,
        extra={**server_logs.ids("r1", "j1", 1), **server_logs.finished("job", answer, "t2v")})
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    text_s = median_s(lambda: text.format(record), args.repeat)
    json_s = median_s(lambda: server_logs.JsonFormatter().format(record), args.repeat)
    print(f"{'a finished line as text':>44}: median {text_s * 1e6:8.1f} us")
    print(f"{'the same line as JSON':>44}: median {json_s * 1e6:8.1f} us (x{json_s / text_s:.2f})")

    scrapes = max(5, args.repeat // 10)
    memory_s, size = scrape_times(model_dir, scrapes, {})
    print(f"{'GET /metrics, jobs in memory':>44}: median {memory_s * 1000:8.3f} ms ({size} bytes)")
    if shutil.which("redis-server") is None:
        print(f"{'GET /metrics, jobs in Redis':>44}: not measured (no redis-server)")
        return
    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
        try:
            import redis as redis_py

            client = redis_py.Redis(port=port, socket_timeout=1)
            for _ in range(100):  # until it answers
                try:
                    client.ping()
                    break
                except redis_py.ConnectionError:
                    time.sleep(0.05)
            redis_s, size = scrape_times(model_dir, scrapes, {"VIDEO_JOB_STORE": f"redis://127.0.0.1:{port}/0"})
        finally:
            redis.kill()
            redis.wait(timeout=10)
    print(f"{'GET /metrics, jobs in Redis':>44}: median {redis_s * 1000:8.3f} ms ({size} bytes, "
          f"x{redis_s / memory_s:.2f})")


if __name__ == "__main__":
    main()
