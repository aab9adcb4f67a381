"""What the Redis job store costs a job, next to the in-process store, on the tiny model: the time
from a submission (the handler call: request checked, decoded and planned, then stored) to the
job's start on the model (the replica that took the submission,
and another replica sharing the store), and a poll's latency. Starts its own redis-server on a
free port (the Debian package).

    .venv/bin/python benchmarks/job_store.py [--jobs 10] [--polls 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
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

REQUEST = {"prompt": "store overhead", "num_frames": 9, "height": 64, "width": 96, "num_inference_steps": 2,
           "outputs": ["gif"]}


def start_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"


def measure(submitter, runner, jobs: int, polls: int) -> tuple[list[float], list[float]]:
    """Submit on `submitter`, run on `runner` (the same handler, or another replica): seconds from
    the submission to the start on the model, and of one poll."""
    started: dict[str, float] = {}
    take = runner.jobs.take

    def timed_take():
        claimed = take()
        if claimed is not None:
            started[claimed.id] = time.perf_counter()
        return claimed

    runner.jobs.take = timed_take
    waits = []
    for n in range(jobs):
        submitted = time.perf_counter()  # the job may start before the submission's answer is back
        job_id = submitter({"inputs": {**REQUEST, "seed": n, "async": True}})["job"]["id"]
        while submitter({"inputs": {"job_id": job_id}})["job"]["status"] != "succeeded":
            time.sleep(0.01)
        waits.append(started[job_id] - submitted)
    poll_times = []
    for _ in range(polls):
        begun = time.perf_counter()
        submitter({"inputs": {"job_id": job_id}})
        poll_times.append(time.perf_counter() - begun)
    return waits, poll_times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--polls", type=int, default=500)
    args = parser.parse_args()
    import redis
    import torch

    from handler import EndpointHandler
    from video_endpoint.jobs import JobSettings

    server_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    print(f"machine: {platform.machine()} cpus={os.cpu_count()}; python {platform.python_version()}, "
          f"torch {torch.__version__}, redis-py {redis.__version__}, redis-server {server_version.removeprefix('v=')}")
    model = str(tiny.ensure(settings.tiny_model_dir()))
    with tempfile.TemporaryDirectory() as workdir:
        process, url = start_redis(workdir)
        try:
            memory = EndpointHandler(model)
            shared = [EndpointHandler(model) for _ in range(2)]
            for handler in shared:
                handler.open_jobs(JobSettings(store=url))
            shared[1].scheduler.stop(0)  # replica 0 runs every job below, whoever took it
            cases = {"in process": (memory, memory), "redis, same replica": (shared[0], shared[0]),
                     "redis, other replica": (shared[1], shared[0])}
            for name, (submitter, runner) in cases.items():
                waits, poll_times = measure(submitter, runner, args.jobs, args.polls)
                print(f"{name:>22}: submit-to-start median {statistics.median(waits) * 1000:7.2f} ms "
                      f"(max {max(waits) * 1000:.2f}), poll median {statistics.median(poll_times) * 1000:.3f} ms")
        finally:
            process.kill()


if __name__ == "__main__":
    main()
