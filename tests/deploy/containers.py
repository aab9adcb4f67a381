"""What the container emulations share: cached environments standing in for each image, the
start-up install step timed and measured, the server started as its container starts it (a
non-root user over a read-only repository where the container does that), and the checks every
route must pass: README's curl examples verbatim, a bad request, a job polled to its end.

Each image's environment is built once per key (everything that goes into it) under
`$XDG_CACHE_HOME/video-endpoint/`; each test run hard-links a copy of it, into which the
entrypoint's install step runs as that container runs it, from PyPI alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPORT
from tests.media import decode_gif, decode_video, decode_zip

ROOT = Path(__file__).resolve().parents[2]
# the servers' sources at the versions the tests name (docs/operations.md "Running the deployment
# emulations"): $VIDEO_DEPLOY_SOURCES, else ../shared beside the repository
SHARED = Path(os.environ.get("VIDEO_DEPLOY_SOURCES") or ROOT.parent / "shared")
HOW_TO_GET = ("set VIDEO_DEPLOY_SOURCES to a folder holding hf-inference-toolkit and hf-pytorch-dlc at the "
              "versions tests/deploy names (docs/operations.md, \"Running the deployment emulations\")")
README = ROOT / "README.md"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "video-endpoint"
# The Hugging Face libraries the requirements pin: the container must end up with exactly these.
HF_STACK = ("diffusers", "transformers", "huggingface-hub", "tokenizers", "accelerate", "peft", "safetensors")
# The DLC's user (its Dockerfile: uid and gid 1001, `huggingface`), taken where this runs as root.
CONTAINER_UID = 1001


def pip_environment(**extra: str) -> dict[str, str]:
    """PyPI alone, as a container sees it: no machine-wide pip configuration or local wheels."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_DEFAULT_TIMEOUT="180")
    if os.environ.get("PIP_CERT"):
        env["PIP_CERT"] = os.environ["PIP_CERT"]
        env["SSL_CERT_FILE"] = os.environ["PIP_CERT"]  # uv reads this one
    env.update(extra)
    return env


def run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def digests(folder: Path) -> list[tuple[str, str]]:
    """(relative path, sha256) of every file under `folder`: what a cache key holds of a snapshot."""
    return [(str(path.relative_to(folder)), hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.rglob("*")) if path.is_file()]


def requirement_pins(path: Path) -> dict[str, str]:
    """name -> version of each `name==version` line of a requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def cached_environment(name: str, key_parts: object, build: Callable[[Path], None]) -> Path:
    """The folder `build(folder)` makes, made once per key and kept in the cache."""
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    done = CACHE / f"{name}-{key}"
    if (done / "bin" / "python").exists():
        return done
    staging = CACHE / f".{name}-{key}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    build(staging)
    staging.rename(done)
    return done


def installed(python: Path) -> dict[str, str]:
    listing = run([str(python), "-m", "pip", "list", "--format", "json"], 120, env=pip_environment())
    return {item["name"].lower().replace("_", "-"): item["version"] for item in json.loads(listing.stdout)}


def new_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` that are not hard links into the cached image: what the
    install step wrote."""
    return sum(path.stat().st_size for path in folder.rglob("*")
               if path.is_file() and not path.is_symlink() and path.stat().st_nlink == 1)


@dataclass
class Container:
    """A started container: where it answers and what its start cost."""

    url: str
    python: Path
    repo: Path
    log: Path
    before: dict[str, str]
    after: dict[str, str]
    install_s: float
    install_mb: float
    installer_output: str

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def workspace(prefix: str) -> Path:
    """A folder the container's user can reach: pytest's own are private to the user running it."""
    root = Path(tempfile.mkdtemp(prefix=f"video-endpoint-{prefix}-"))
    root.chmod(0o755)
    return root


def as_container_user(command: list[str], writable: list[Path]) -> list[str]:
    """`command` run as the DLC's non-root user where this runs as root (else as the current user,
    who is not root): the folders in `writable` are given to that user, nothing else is."""
    if os.geteuid() != 0:
        return command
    for folder in writable:
        for path in (folder, *folder.rglob("*")):
            if path.is_dir() and not path.is_symlink():  # directories only: files stay hard links
                os.chown(path, CONTAINER_UID, CONTAINER_UID)
    return ["setpriv", f"--reuid={CONTAINER_UID}", f"--regid={CONTAINER_UID}", "--clear-groups", *command]


def read_only(repo: Path) -> None:
    """The repository as the DLC mounts it: root's, mode 755 (read-only for its user)."""
    owner_writes = os.geteuid() == 0  # else the current user owns it: take its write bits too
    for path in (repo, *repo.rglob("*")):
        if not path.is_symlink():
            mode = 0o755 if path.is_dir() else 0o644
            path.chmod(mode if owner_writes else mode & ~0o222)


def lay_out(repo: Path, model_dir: Path, container: str) -> str:
    """A Hub repository: the tiny checkpoint plus what scripts/hub_repo.sh lays out for `container`.
    Returns what the script printed."""
    shutil.copytree(model_dir, repo)
    return run(["bash", str(ROOT / "scripts" / "hub_repo.sh"), "--container", container, str(repo)], 60).stdout


def exported_variables(hub_repo_output: str) -> dict[str, str]:
    """The `NAME=value` pairs hub_repo.sh printed for the container."""
    return dict(re.findall(r"^\s+([A-Z_]+)=(\S*)$", hub_repo_output, flags=re.M))


def wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the server did not start:\n" + log.read_text(errors="replace")[-5000:])
        time.sleep(0.5)


def console_script(python: Path, module: str, function: str = "main") -> list[str]:
    """What a console script runs, through this environment's python: a script's `#!` names the
    python it was installed with, the cached image's, not this copy's."""
    return [str(python), "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


@contextmanager
def serving(command: list[str], env: dict[str, str], cwd: Path, log: Path,
            port: int) -> Iterator[tuple[str, subprocess.Popen]]:
    """The server process, answering /health; stopped afterwards."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, log)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def report_start(route: str, container: Container, installer: str) -> None:
    files = downloads(container.installer_output)
    downloaded = f"downloaded {sum(mb for _, mb in files):.1f} MB in {len(files)} files, " if files else ""
    changed = [f"{name} {container.before.get(name, '-')} -> {version}"
               for name, version in sorted(container.after.items()) if container.before.get(name) != version]
    REPORT.append(
        f"{route} start (emulated): `{installer}` took {container.install_s:.1f} s, {downloaded}wrote "
        f"{container.install_mb:.1f} MB; changed: {', '.join(changed)}")


def downloads(installer_output: str) -> list[tuple[str, float]]:
    """(file, MB) for each `Downloading name (12.3 MB)` line pip printed (uv prints `(12.3MiB)`)."""
    scale = {"kB": 1e-3, "MB": 1.0, "GB": 1e3, "KiB": 1.024e-3, "MiB": 1.048576, "GiB": 1073.741824}
    return [(name, float(size) * scale[unit]) for name, size, unit in
            re.findall(r"Downloading (\S+) \(([\d.]+) ?(kB|MB|GB|KiB|MiB|GiB)\)", installer_output)]


def check_start(container: Container, pinned: Path) -> None:
    """The install step kept the image's torch and gave the project exactly the pinned libraries."""
    assert container.after["torch"] == container.before["torch"], "the install step replaced torch"
    pins = requirement_pins(pinned)
    for name in HF_STACK:
        assert container.after[name] == pins[name], (name, container.after[name], pins[name])


def readme_curl_examples() -> str:
    """The bash block of README's deploy section, verbatim."""
    section = README.read_text().split("## Deploy as a Hugging Face Inference Endpoint", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return block


def check_readme_curls(url: str, folder: Path, log: Path) -> None:
    """README's three curl examples verbatim against `url` (GNU `base64 -w0` for the image), each
    answer decoded: frame counts, sizes, durations, codec."""
    # a photo-sized JPEG: its base64 is over Linux's 128 KiB limit for one command-line argument,
    # which the card's own `-d "...$IMG_B64..."` hits
    photo = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    Image.fromarray(photo).save(folder / "my_input.jpg", quality=90)
    assert (folder / "my_input.jpg").stat().st_size * 4 / 3 > 128 * 1024
    script = (readme_curl_examples().replace("https://<ENDPOINT>.aws.endpoints.huggingface.cloud", url)
              .replace("<TOKEN>", "hf_test"))
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=folder, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr + log.read_text(errors="replace")[-3000:]
    gif = decode_gif((folder / "output.gif").read_bytes())
    assert gif.frames.shape == (24, 512, 512, 3)
    assert sum(gif.durations_ms) == pytest.approx(2000, abs=10)  # 24 frames at the card's 12 fps
    assert decode_gif((folder / "animated.gif").read_bytes()).frames.shape == (32, 512, 512, 3)
    video = decode_video((folder / "output.webm").read_bytes())
    assert (video.codec, video.frames.shape, video.fps) == ("vp9", (48, 512, 512, 3), 24)


def check_every_family(python: Path, repo: Path, models: dict[str, str], by_path: bool, home: Path) -> None:
    """tests/deploy/probe.py in the container's Python: every tiny family loaded by the repository's
    handler, each mode it serves answered with the frames asked for."""
    command = [str(python), str(ROOT / "tests" / "deploy" / "probe.py"), *(["--by-path"] if by_path else []),
               str(repo), json.dumps(models)]
    done = run(command, 900, env={"PATH": os.environ["PATH"], "HOME": str(home), "HF_HUB_OFFLINE": "1"}, cwd="/")
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert {answer["model"] for answer in answers} == set(models)
    assert {answer["mode"] for answer in answers} == {"t2v", "i2v", "flf2v"}
    for answer in answers:
        result = answer["result"]
        assert result["ok"] is True, answer
        frames = decode_zip(base64.b64decode(result["outputs"]["zip_base64"])).frames
        assert frames.shape == (9, 64, 96, 3), (answer["model"], answer["mode"], frames.shape)
        assert result["diagnostics"]["mode"] == answer["mode"]


SMALL_JOB = {"prompt": "waves", "height": 64, "width": 96, "num_frames": 9, "num_inference_steps": 4, "seed": 3,
             "outputs": ["gif"]}


def poll_job(url: str, job_id: str, timeout: float = 120, every: float = 0.2) -> dict:
    """The job's answer once it is no longer queued or running."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.post(url, json={"inputs": {"job_id": job_id}}, timeout=60).json()
        if answer["job"]["status"] not in ("queued", "running"):
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(every)


def check_job_to_completion(url: str) -> dict:
    """A job submitted, polled until it ends, and its GIF decoded; returns the final answer."""
    submitted = httpx.post(url, json={"inputs": {**SMALL_JOB, "async": True}}, timeout=60).json()
    assert submitted["ok"] is True and submitted["job"]["status"] in ("queued", "running"), submitted
    answer = poll_job(url, submitted["job"]["id"])
    assert answer["job"]["status"] == "succeeded", answer
    assert answer["job"]["progress"] == {"step": 4, "total": 4}
    assert decode_gif(base64.b64decode(answer["outputs"]["gif_base64"])).frames.shape == (9, 64, 96, 3)
    return answer
