"""The client-only install (README "Clients"): `pip install -r requirements-client.txt` and the project
with `--no-deps`, in an environment of its own with no torch, diffusers or ffmpeg, talks to a served
endpoint and writes a video that decodes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPORT, serving
from tests.deploy.containers import ROOT, cached_environment, pip_environment, run
from tests.media import decode_video

HEAVY = ("torch", "diffusers", "transformers", "imageio_ffmpeg", "av", "starlette", "uvicorn")


def _build_client(folder: Path) -> None:
    run([sys.executable, "-m", "venv", str(folder)], 120)
    python = str(folder / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements-client.txt")], 600,
        env=pip_environment())


@pytest.fixture(scope="module")
def client_python(tmp_path_factory) -> Path:
    """The client environment (cached per requirements-client.txt and Python), with this checkout
    installed into it as a user would: a built wheel, `--no-deps`."""
    folder = cached_environment("client", [(ROOT / "requirements-client.txt").read_text(), sys.version],
                                _build_client)
    wheels = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(ROOT)], 600,
        env=pip_environment())
    python = folder / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
         *map(str, wheels.glob("*.whl"))], 300, env=pip_environment())
    return python


def test_the_client_install_has_nothing_heavy(client_python):
    listing = run([str(client_python), "-m", "pip", "list", "--format", "freeze"], 120, env=pip_environment())
    names = {line.split("==")[0].lower().replace("-", "_") for line in listing.stdout.splitlines()}
    assert "video_endpoint_handler" in names
    assert not names & set(HEAVY), names & set(HEAVY)


def test_generate_url_from_the_client_install_writes_a_video(client_python, tiny_model_dir, tmp_path):
    out = tmp_path / "clip.mp4"
    script = client_python.parent / "video-endpoint"
    with serving(tiny_model_dir, tmp_path / "server.log", {}) as (url, _process):
        started = time.perf_counter()
        # run from elsewhere: the installed package is what is imported, not this checkout
        done = subprocess.run([str(script), "generate", "--url", url, "--prompt", "waves", "--frames", "9",
                               "--width", "64", "--height", "64", "--steps", "2", "--poll", "0.05", "-o", str(out)],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        wall = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    video = decode_video(out.read_bytes())
    assert video.codec == "h264" and video.frames.shape == (9, 64, 64, 3)
    imports = subprocess.run(
        [str(client_python), "-X", "importtime", "-c", "import video_endpoint.cli"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    total_us = int(imports.stderr.strip().splitlines()[-1].split("|")[1])
    REPORT.append(f"client install: generate --url of a 9-frame tiny job {wall:.2f} s wall, "
                  f"import video_endpoint.cli {total_us / 1e6:.2f} s")
