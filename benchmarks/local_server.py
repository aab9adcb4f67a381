"""The benchmarks' local server: `video-endpoint serve` on the tiny model in a process of its own,
started once it answers its liveness route (not a benchmark itself)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def start_server(model_dir: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """The server process with `env` added, and its URL; exits the benchmark if it does not start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "video_endpoint", "serve", "--model", model_dir,
                               "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")
