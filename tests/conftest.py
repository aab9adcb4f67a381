from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import socket

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

from handler import EndpointHandler
from pipelines import tiny
from video_endpoint.request_schema import Limits

# Lines a test measured, printed after the run (`pytest -q` shows them too).
REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("measured")
        for line in REPORT:
            terminalreporter.write_line(line)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Small sizes keep a full request on the tiny model well under a second on 2 CPU cores.
SMALL = {"height": 64, "width": 96, "num_inference_steps": 2}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny random-weight LTX-Video pipeline, built once and saved like a real checkpoint."""
    return tiny.build(tmp_path_factory.mktemp("models") / "tiny-ltx")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """tiny_models("tiny-wan") -> the directory of that tiny checkpoint, built once per session."""
    built: dict[str, object] = {}
    root = tmp_path_factory.mktemp("family-models")

    def get(model_id: str):
        if model_id not in built:
            built[model_id] = tiny.build(root / model_id, model_id)
        return built[model_id]

    return get


@pytest.fixture(scope="session")
def family_handlers(tiny_models):
    """family_handlers("tiny-wan") -> an EndpointHandler on that tiny checkpoint, created once."""
    handlers: dict[str, EndpointHandler] = {}

    def get(model_id: str) -> EndpointHandler:
        if model_id not in handlers:
            handlers[model_id] = EndpointHandler(str(tiny_models(model_id)))
        return handlers[model_id]

    return get


@pytest.fixture(scope="session")
def handler(tiny_model_dir) -> EndpointHandler:
    """Created the way the Endpoint creates it: once, from the model directory."""
    return EndpointHandler(str(tiny_model_dir))


@pytest.fixture(autouse=True)
def _quiet_libraries():
    logging.getLogger("diffusers").setLevel(logging.ERROR)


def jpeg_base64(width: int = 80, height: int = 48, **save_args) -> str:
    """A real JPEG (a gradient with a bright block), base64 encoded as a client would send it."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], -1).astype(np.uint8)
    rgb[: height // 2, : width // 3] = (255, 255, 255)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90, **save_args)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# Property-based tests: a CI profile of a few hundred examples and a long one (HYPOTHESIS_PROFILE=long).
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tight limits: only small requests are valid, so a fuzzed request that passes validation runs fast.
FUZZ_LIMITS = Limits(max_frames=9, max_pixels=64 * 64, max_video_pixels=9 * 64 * 64, max_steps=3,
                     max_image_bytes=256 * 1024, max_image_pixels=512 * 512)


@pytest.fixture(scope="session")
def fuzz_handler(tiny_model_dir) -> EndpointHandler:
    return EndpointHandler(str(tiny_model_dir), limits=FUZZ_LIMITS)


GOOD_SMALL_REQUEST = {"inputs": {"prompt": "fine", "height": 32, "width": 32, "num_frames": 1,
                                 "num_inference_steps": 2, "seed": 0, "outputs": ["gif"]}}


@contextlib.contextmanager
def serving(model_dir, log_path, env: dict[str, str]):
    """`video-endpoint serve` on `model_dir` in a subprocess with `env` added, until its liveness
    route answers; yields (url, process) and stops it after."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "video_endpoint", "serve", "--model", str(model_dir), "--host", "127.0.0.1",
             "--port", str(port)], cwd=Path(__file__).resolve().parents[1], env={**os.environ, **env}, stdout=log,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("server did not start:\n" + Path(log_path).read_text())
    try:
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=10)


class RedisServer:
    """A real `redis-server` (the Debian package) on a free loopback port, no persistence; it can
    be stopped and started again on the same port."""

    def __init__(self, workdir, password: str = "") -> None:
        import shutil

        if shutil.which("redis-server") is None:
            if os.environ.get("CI") == "true":  # CI installs it (scripts/test.sh): missing there is a failure
                pytest.fail("redis-server is missing (scripts/test.sh installs the Debian package)")
            pytest.skip("needs redis-server (Debian package redis-server; scripts/test.sh installs it as root)")
        self.port, self.workdir, self.password = free_port(), workdir, password
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self) -> None:
        import subprocess
        import time

        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self):
        import redis

        return redis.Redis(port=self.port, password=self.password or None, socket_timeout=2)


@pytest.fixture()
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()
