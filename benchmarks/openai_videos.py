"""What OpenAI's Videos API costs on the local server, next to the endpoint's own routes, on the tiny
model: one small video (MP4, thumbnail and sprite sheet) made synchronously (`POST /`), as a job
polled every 50 ms (`POST /jobs`), and through the `openai` SDK (`create_and_poll`, paced by the
server's `openai-poll-after-ms`, then `download_content`), alternated in one run; and how long after
a `DELETE` of a running 2,000-step video the next video starts on the model.

    .venv/bin/python benchmarks/openai_videos.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.local_server import start_server  # noqa: E402
from pipelines import tiny  # noqa: E402
from video_endpoint import settings  # noqa: E402

TOKEN = "benchmark-token"
INPUTS = {"prompt": "x", "height": 64, "width": 96, "num_frames": 12, "fps": 12, "num_inference_steps": 2,
          "outputs": ["mp4", "thumbnail", "spritesheet"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks its video methods deprecated
    import openai
    import torch

    print(f"machine: {platform.machine()} cpus={os.cpu_count()}; python {platform.python_version()}, "
          f"torch {torch.__version__}, openai {openai.__version__}")
    server, url = start_server(str(tiny.ensure(settings.tiny_model_dir())),
                               {"VIDEO_API_TOKEN": TOKEN, "VIDEO_MAX_STEPS": "2000"})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN)
    http = httpx.Client(base_url=url, headers=headers, timeout=120)

    def synchronous() -> None:
        assert http.post("/", json={"inputs": INPUTS}).json()["ok"]

    def job() -> None:
        job_id = http.post("/jobs", json={"inputs": INPUTS}).json()["job"]["id"]
        while http.get(f"/jobs/{job_id}").json()["job"]["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.05)

    def sdk() -> None:
        video = client.videos.create_and_poll(prompt="x", size="96x64", seconds="1",
                                              extra_body={"num_inference_steps": 2})
        assert video.status == "completed" and len(client.videos.download_content(video.id).read()) > 0

    try:
        ways = {"POST / (synchronous)": synchronous, "POST /jobs, polled every 50 ms": job,
                "openai SDK create_and_poll + download": sdk}
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeat + 1):  # the first round warms up and is not counted
            for name, way in ways.items():
                started = time.perf_counter()
                way()
                times[name].append(time.perf_counter() - started)
        baseline = statistics.median(times["POST / (synchronous)"][1:])
        for name, measured in times.items():
            median = statistics.median(measured[1:])
            print(f"{name:>40}: median {median * 1000:7.1f} ms (x{median / baseline:.2f})")
        freed = []
        for _ in range(args.repeat):
            long = client.videos.create(prompt="long", size="96x64", seconds="1",
                                        extra_body={"num_inference_steps": 2000})
            while client.videos.retrieve(long.id).progress < 1:
                time.sleep(0.02)
            deleted = time.perf_counter()
            client.videos.delete(long.id)
            following = client.videos.create(prompt="next", size="96x64", seconds="1",
                                             extra_body={"num_inference_steps": 2})
            while client.videos.retrieve(following.id).status == "queued":
                time.sleep(0.005)
            freed.append(time.perf_counter() - deleted)
            client.videos.poll(following.id, poll_interval_ms=20)
        print(f"{'DELETE of a running video -> next starts':>40}: median {statistics.median(freed) * 1000:7.1f} ms "
              f"(max {max(freed) * 1000:.1f})")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
