"""hf-serve, Hugging Face's successor to the inference toolkit, emulated on this machine in its two
forms, each test run on both:

- `hf-dlc`: Hugging Face's PyTorch inference DLC (../shared/hf-pytorch-dlc, SNAPSHOT.md there):
  hf-serve 0.0.1rc7 from the wheel committed beside its Dockerfile, over that wheel's requirements as
  PyPI had them on the snapshot's date, Python 3.11; started as the entrypoint starts it: the
  repository's requirements.txt installed with `uv pip install` (without the entrypoint's `--active`,
  which current uv refuses), then `hf-serve`, as the image's non-root user (uid 1001, where this runs
  as root) over a read-only repository.
- `hf-serve`: hf-serve 0.2.0 from PyPI on Python 3.12, the same start-up over the current library
  generation (`--container hf-serve`), run as the invoking user over a read-only repository.

In both, the image's CUDA torch is replaced by this machine's torch 2.13.0 (the DLC: its CPU build;
Python 3.12: PyPI's build, run on CPU), and the checks are the toolkit's: README's curl examples
verbatim, /predict, a bad request, a job polled to its end; plus what users must plan for there
(/health during a synchronous request, the payload log line).
"""

from __future__ import annotations

import base64
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPORT, free_port
from tests.deploy import containers
from tests.deploy.containers import HOW_TO_GET, ROOT, SHARED, run
from tests.media import decode_zip

DLC = SHARED / "hf-pytorch-dlc"
DLC_WHEEL = DLC / "hf_serve-0.0.1rc7-py3-none-any.whl"
# The Dockerfile's commit is of 2026-05-06: the image's unpinned packages are as PyPI had them then.
DLC_DATE = "2026-05-07T00:00:00Z"
# Of the wheel's requirements, left out: the CUDA builds (torch 2.7.1, torchvision, torchcodec; this
# machine's torch stands in) and timm, which needs torchvision; transformers' torch-speech extra
# (torchaudio) likewise. None of them is imported by the custom-handler route.
DLC_LEFT_OUT = {"torch", "torchvision", "torchcodec", "timm"}
HF_SERVE_RELEASE = "hf-serve==0.2.0"
# hf-serve 0.2's unpinned dependencies, as PyPI had them on this date.
HF_SERVE_DATE = "2026-12-01T00:00:00Z"
# Bump when a build's steps change (the cache key holds everything else that goes in).
RECIPE = 1


def dlc_image_requirements() -> list[str]:
    """What the DLC's Dockerfile installs over its torch: the rc7 wheel's requirements (less the
    left-out ones) and the Dockerfile's own upgrades that reach the handler's imports."""
    with zipfile.ZipFile(DLC_WHEEL) as wheel:
        [metadata] = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
        lines = wheel.read(metadata).decode().splitlines()
    requirements = []
    for line in lines:
        if line.startswith("Requires-Dist: ") and "extra ==" not in line:
            spec = line.removeprefix("Requires-Dist: ")
            if re.match(r"[A-Za-z0-9_.-]+", spec).group().lower() not in DLC_LEFT_OUT:
                requirements.append(spec.replace(",torch-speech", ""))
    return [*requirements, "Pillow>=12.2", "setuptools>=78.1.1"]


def world_usable_python(version: str) -> str | None:
    """A python`version` that the container's non-root user can run too (pyenv's live under /root)."""
    for candidate in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def any_python(version: str) -> str | None:
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for folder in sorted(pyenv.glob(f"{version}.*"), reverse=True):
        if (folder / "bin" / f"python{version}").exists():
            return str(folder / "bin" / f"python{version}")
    found = shutil.which(f"python{version}")
    return found if found and "/shims/" not in found else None  # a pyenv shim without that version fails


@dataclass(frozen=True)
class Route:
    name: str
    """hub_repo.sh's --container"""
    python: str | None
    build: Callable[[str, Path], None]
    key: object
    non_root: bool
    pinned: Path


def build_dlc(python: str, folder: Path) -> None:
    torch_version = importlib.metadata.version("torch")
    run([python, "-m", "venv", str(folder)], 120)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q"]
    run([*pip, "--upgrade", "pip"], 600)
    run([*pip, f"torch=={torch_version}"], 900)  # this machine's torch, from wherever development got it
    constraint = folder / "torch-constraint.txt"
    constraint.write_text(f"torch=={torch_version}\n")
    # uv: the Dockerfile installs the newest release of its build day
    run([*pip, "--uploaded-prior-to", DLC_DATE, "-c", str(constraint), *dlc_image_requirements(), "uv"], 1800,
        env=containers.pip_environment())
    run([*pip, "--no-deps", str(DLC_WHEEL)], 300, env=containers.pip_environment())


def build_hf_serve(python: str, folder: Path) -> None:
    run([python, "-m", "venv", str(folder)], 120)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q"]
    env = containers.pip_environment()
    run([*pip, "--upgrade", "pip"], 600, env=env)
    # PyPI's torch for Python 3.12 (its CUDA libraries come along; it runs on CPU here)
    torch_pin = f"torch=={importlib.metadata.version('torch').split('+')[0]}"
    run([*pip, "--uploaded-prior-to", HF_SERVE_DATE, torch_pin], 1800, env=env)
    constraint = folder / "torch-constraint.txt"
    constraint.write_text(f"{torch_pin}\n")
    run([*pip, "--uploaded-prior-to", HF_SERVE_DATE, "-c", str(constraint), HF_SERVE_RELEASE, "uv"], 1800, env=env)


def routes() -> list[Route]:
    torch_version = importlib.metadata.version("torch")
    dlc_python = world_usable_python("3.11") if os.geteuid() == 0 else any_python("3.11")
    return [
        Route("hf-dlc", dlc_python, build_dlc,
              [RECIPE, "hf-dlc", containers.digests(DLC) if DLC.is_dir() else None, DLC_DATE, sorted(DLC_LEFT_OUT),
               torch_version, dlc_python], non_root=True, pinned=ROOT / "requirements.txt"),
        Route("hf-serve", any_python("3.12"), build_hf_serve,
              [RECIPE, HF_SERVE_RELEASE, HF_SERVE_DATE, torch_version], non_root=False,
              pinned=ROOT / "requirements-current.txt"),
    ]


def route_skip(route: Route) -> str | None:
    if route.name == "hf-dlc" and not DLC.is_dir():
        return f"no DLC snapshot at {DLC}: {HOW_TO_GET}"
    if route.python is None:
        return f"no Python for the {route.name} route (hf-dlc: 3.11 usable by uid 1001; hf-serve: 3.12)"
    return None


@dataclass
class Served:
    container: containers.Container
    route: Route
    process_uid: int
    repo_files: list[str]


@pytest.fixture(scope="module", params=routes(), ids=lambda route: route.name)
def served(request, tiny_model_dir):
    route: Route = request.param
    if reason := route_skip(route):
        pytest.skip(reason)
    base = containers.cached_environment(
        f"{route.name}-image", [route.key, sys.version],
        lambda folder: route.build(route.python, folder))  # type: ignore[arg-type]
    root = containers.workspace(route.name)
    venv = root / "venv"
    run(["cp", "-al", str(base), str(venv)], 300)  # hard links: installers replace files, never edit them
    python = venv / "bin" / "python"
    before = containers.installed(python)
    repo = root / "repository"
    variables = containers.exported_variables(containers.lay_out(repo, tiny_model_dir, route.name))
    assert variables == {"HF_TASK": "custom", "HF_TRUST_REMOTE_CODE": "1"}
    containers.read_only(repo)
    repo_files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*"))
    home = root / "home"
    home.mkdir()
    home.chmod(0o755)
    port = free_port()
    keep_torch = root / "keep-torch.txt"
    keep_torch.write_text(f"torch=={before['torch']}\n")
    keep_torch.chmod(0o644)
    env = {**containers.pip_environment(), "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home),
           "VIRTUAL_ENV": str(venv), "HF_HUB_OFFLINE": "1", "UV_CONSTRAINT": str(keep_torch),
           "UV_NO_PROGRESS": "1"}
    writable = [venv, home] if route.non_root else []

    def as_user(command: list[str]) -> list[str]:
        return containers.as_container_user(command, writable) if route.non_root else command

    # the entrypoint's install step; UV_CONSTRAINT only makes a torch replacement fail fast here
    start = time.perf_counter()
    uv_install = [str(venv / "bin" / "uv"), "pip", "install", "-r", str(repo / "requirements.txt"), "--no-cache-dir"]
    install = run(as_user(uv_install), 1200, env=env, cwd=home)
    install_s = time.perf_counter() - start
    install_mb = containers.new_bytes(venv) / 1e6  # before the server writes its bytecode caches
    after = containers.installed(python)
    # the entrypoint: HF_MODEL_DIR becomes MODEL_DIR, then `exec hf-serve`; hub_repo.sh's variables
    serve_env = {**env, **variables, "MODEL_DIR": str(repo), "PORT": str(port), "HOST": "127.0.0.1"}
    serve_env.pop("UV_CONSTRAINT")
    log = root / "hf-serve.log"
    hf_serve = as_user(containers.console_script(python, "hf_serve.cli"))  # the `hf-serve` command
    with containers.serving(hf_serve, serve_env, home, log, port) as (url, process):
        status = Path(f"/proc/{process.pid}/status").read_text()  # setpriv execs the server in its place
        uid = int(re.search(r"^Uid:\s+(\d+)", status, flags=re.M).group(1))
        container = containers.Container(
            url=url, python=python, repo=repo, log=log, before=before, after=after, install_s=install_s,
            install_mb=install_mb, installer_output=install.stdout + install.stderr)
        yield Served(container=container, route=route, process_uid=uid, repo_files=repo_files)
    shutil.rmtree(root, ignore_errors=True)


def test_start_keeps_torch_and_installs_the_generation_the_project_pins(served):
    containers.check_start(served.container, served.route.pinned)
    containers.report_start(served.route.name, served.container, "uv pip install -r requirements.txt --no-cache-dir")


def test_runs_as_the_container_user_over_a_read_only_repository(served):
    if served.route.non_root:
        assert served.process_uid != 0
        if os.geteuid() == 0:
            assert served.process_uid == containers.CONTAINER_UID
    repo = served.container.repo
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == served.repo_files  # nothing written there
    if os.geteuid() != 0:  # root's repository is read-only through its owner and modes alone
        assert not any(path.stat().st_mode & 0o222 for path in (repo, *repo.rglob("*")) if not path.is_symlink())


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_readme_curl_examples_verbatim(served, tmp_path):
    containers.check_readme_curls(served.container.url, tmp_path, served.container.log)


def test_predict_route_and_a_bad_request(served):
    inputs = {"prompt": "a kite", "height": 64, "width": 96, "num_frames": 9, "num_inference_steps": 2,
              "seed": 1, "outputs": ["zip"]}
    answer = httpx.post(f"{served.container.url}/predict", json={"inputs": inputs}, timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    frames = decode_zip(base64.b64decode(answer.json()["outputs"]["zip_base64"])).frames
    assert frames.shape == (9, 64, 96, 3)
    bad = httpx.post(served.container.url, json={"inputs": {"prompt": "x", "num_frames": 0}}, timeout=60)
    assert bad.status_code == 200  # hf-serve answers what the handler returns
    assert bad.json()["ok"] is False and bad.json()["error"]["field"] == "num_frames"


def test_a_job_runs_to_completion(served):
    containers.check_job_to_completion(served.container.url)


def test_payloads_stay_out_of_the_server_log(served):
    secret = "a lighthouse only the client knows about"
    answer = httpx.post(served.container.url, json={"inputs": {**containers.SMALL_JOB, "prompt": secret}},
                        timeout=120)
    assert answer.json()["ok"] is True
    log = served.container.log.read_text(errors="replace")
    assert "Received request with: <" in log and "characters, not logged" in log
    assert secret not in log


def longest_health_wait(url: str, busy: threading.Event) -> float:
    """Polls /health while `busy` is set; the longest answer, in seconds."""
    longest = 0.0
    while busy.is_set():
        started = time.perf_counter()
        assert httpx.get(f"{url}/health", timeout=120).status_code == 200
        longest = max(longest, time.perf_counter() - started)
        time.sleep(0.05)
    return longest


def test_health_waits_for_a_synchronous_request_but_not_for_a_job(served):
    """hf-serve runs the handler on its event loop: /health waits for a whole synchronous request.
    A job generates on the handler's own thread, so /health answers while it runs."""
    url = served.container.url
    request = {**containers.SMALL_JOB, "height": 512, "width": 512, "num_frames": 33, "num_inference_steps": 20}
    busy = threading.Event()
    busy.set()
    waits: list[float] = []
    poller = threading.Thread(target=lambda: waits.append(longest_health_wait(url, busy)))
    started = time.perf_counter()
    poller.start()
    time.sleep(0.3)
    answer = httpx.post(url, json={"inputs": request}, timeout=300).json()
    sync_s = time.perf_counter() - started - 0.3
    busy.clear()
    poller.join()
    assert answer["ok"] is True
    job = httpx.post(url, json={"inputs": {**request, "async": True}}, timeout=60).json()["job"]
    busy.set()
    poller = threading.Thread(target=lambda: waits.append(longest_health_wait(url, busy)))
    poller.start()
    containers.poll_job(url, job["id"], timeout=300)
    busy.clear()
    poller.join()
    sync_wait, job_wait = waits
    REPORT.append(f"{served.route.name}: /health waited up to {sync_wait:.2f} s during a {sync_s:.2f} s synchronous "
                  f"request, up to {job_wait:.2f} s while the same request ran as a job")
    assert sync_wait > 0.5 * sync_s  # README tells users to plan for it
    assert job_wait < 1.0


def test_every_family_serves_both_modes(served, tiny_models):
    """Each tiny family loaded by the repository's handler in this server's Python, the handler
    file loaded the way hf-serve loads it (by path, the repository not on sys.path)."""
    if served.route.name != "hf-serve":
        pytest.skip("hf-dlc runs the toolkit generation, which tests/deploy/test_toolkit.py covers per family")
    from pipelines import tiny

    # built here, but for those whose classes only the current generation has (Kandinsky 6): the server's Python
    models = {model_id: str(tiny_models(model_id)) for model_id in tiny.BUILDERS if tiny.buildable(model_id)}
    for model_id in set(tiny.BUILDERS) - set(models):
        target = served.container.repo.parent / "tiny" / model_id
        containers.run([str(served.container.python), "-c", "import sys; from pipelines import tiny; "
                        "tiny.build(sys.argv[1], sys.argv[2])", str(target), model_id], 300,
                       cwd=served.container.repo, env={"PATH": os.environ["PATH"], "HOME": str(target.parent)})
        models[model_id] = str(target)
    containers.check_every_family(served.container.python, served.container.repo, models, by_path=True,
                                  home=served.container.repo.parent / "home")


def test_the_dlc_entrypoint_install_flag_is_refused_by_its_uv(served):
    """README says the DLC's own entrypoint line fails: keep that true for the uv the image gets."""
    if served.route.name != "hf-dlc":
        pytest.skip("the flag is in the DLC's entrypoint")
    line = next(line.strip() for line in (DLC / "entrypoint.sh").read_text().splitlines()
                if line.strip().startswith("uv pip install"))
    assert "--active" in line.split()
    venv = served.container.python.parent.parent
    requirements = served.container.repo / "requirements.txt"
    command = [str(venv / "bin" / "uv"), "pip", "install", "--active", "-r", str(requirements), "--dry-run"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**containers.pip_environment(), "VIRTUAL_ENV": str(venv)})
    assert done.returncode != 0 and "--active" in done.stderr, done.stderr[-500:]
