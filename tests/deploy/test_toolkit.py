"""The stock Inference Endpoint container, emulated on this machine: the deployment README gives.

The container (../shared/hf-inference-toolkit, SNAPSHOT.md there) is Hugging Face's inference
toolkit over a Python 3.11 image with pinned libraries; its entrypoint runs
`pip install -r requirements.txt` from the model repository, then serves `handler.py` with the
toolkit's starlette app. Here:
1. a virtualenv like the image: the toolkit (`--no-deps`) and IMAGE_PACKAGES, resolved as PyPI
   stood on the snapshot's date, with this machine's torch (the image's CUDA torch 2.5.1 cannot be
   had here); cached, keyed on everything that goes into it;
2. a hard-linked copy of it, into which `pip install -r requirements.txt --no-cache-dir` runs as the
   entrypoint runs it, from PyPI alone, timed and with its downloads counted (tests/deploy/containers.py);
3. a Hub repository laid out by scripts/hub_repo.sh (what README says to push) plus a tiny
   checkpoint, served by the toolkit's app under uvicorn on 127.0.0.1;
4. README's curl examples verbatim against it, a bad request, GET /health; and every tiny family
   loaded by the same handler in that Python.
When the hosted toolkit moves to newer pins, update IMAGE_PACKAGES and SNAPSHOT_DATE from
SNAPSHOT.md: this test then tells whether the project still deploys.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.deploy import containers
from tests.deploy.containers import HOW_TO_GET, ROOT, SHARED, run
from tests.media import decode_gif

TOOLKIT = SHARED / "hf-inference-toolkit"

# The toolkit's setup.py: install_requires and the extras the Dockerfile installs (torch, st,
# diffusers). Left out: kenlm (a git URL, unreachable here; audio tasks only), torchvision and
# torchaudio (PyPI's builds need PyPI's CUDA torch), and the image's torch==2.5.1 (this machine's
# torch instead, as for development).
IMAGE_PACKAGES = [
    "transformers[sklearn,sentencepiece,vision]==4.51.3",
    "librosa", "pyctcdecode>=0.3.0", "phonemizer",  # transformers' [audio] extra, less kenlm
    "huggingface_hub[hf_transfer]==0.30.2",
    "Pillow", "ffmpeg", "starlette", "uvicorn", "pandas", "orjson", "einops",
    "sentence_transformers==4.0.2",
    "diffusers==0.33.1", "accelerate==1.6.0",
    "peft==0.15.1",
]
# The snapshot's commit is of 2025-08-25: the image's unpinned packages are as PyPI had them then.
SNAPSHOT_DATE = "2025-08-26T00:00:00Z"
# Bump when build_image's steps change (the cache key holds everything else that goes in).
IMAGE_RECIPE = 2

pytestmark = pytest.mark.skipif(not TOOLKIT.is_dir(), reason=f"no toolkit snapshot at {TOOLKIT}: {HOW_TO_GET}")


def build_image(folder: Path) -> None:
    """The image's Python environment (a few minutes)."""
    torch_version = importlib.metadata.version("torch")
    run([sys.executable, "-m", "venv", str(folder)], 120)
    python = str(folder / "bin" / "python")
    # this machine's torch, from wherever development got it (the local wheel where there is one)
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], 600)
    run([python, "-m", "pip", "install", "-q", f"torch=={torch_version}"], 900)
    constraint = folder / "torch-constraint.txt"
    constraint.write_text(f"torch=={torch_version}\n")
    dated = ["--uploaded-prior-to", SNAPSHOT_DATE]
    run([python, "-m", "pip", "install", "-q", *dated, "-c", str(constraint), *IMAGE_PACKAGES], 1800,
        env=containers.pip_environment())
    # pip builds a source tree in place: build a writable copy (CI's shared/ is read-only)
    source = folder / "toolkit-source"
    shutil.copytree(TOOLKIT, source, copy_function=shutil.copyfile)
    for path in (source, *source.rglob("*")):
        path.chmod(path.stat().st_mode | 0o200)
    run([python, "-m", "pip", "install", "-q", "--no-deps", str(source)], 600, env=containers.pip_environment())
    shutil.rmtree(source)
    # the image's pip (the newest on its date), which the entrypoint runs
    run([python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", *dated, "pip"], 600,
        env=containers.pip_environment())


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, tiny_model_dir):
    """The container started on a Hub repository holding the tiny checkpoint."""
    root = tmp_path_factory.mktemp("stock-endpoint")
    base = containers.cached_environment("stock-endpoint", [
        IMAGE_RECIPE, IMAGE_PACKAGES, SNAPSHOT_DATE, importlib.metadata.version("torch"), sys.version,
        containers.digests(TOOLKIT)], build_image)
    venv = root / "venv"
    run(["cp", "-al", str(base), str(venv)], 300)  # hard links: pip replaces files, never edits them
    python = venv / "bin" / "python"
    before = containers.installed(python)
    repo = root / "repo"
    assert "environment: none needed" in containers.lay_out(repo, tiny_model_dir, "toolkit")

    # the entrypoint's step, from PyPI; the constraint only makes a torch replacement fail fast here
    # (on the Endpoint it would download ~3 GB) instead of downloading a CUDA torch
    constraint = root / "keep-torch.txt"
    constraint.write_text(f"torch=={before['torch']}\n")
    start = time.perf_counter()
    pip = run([str(python), "-m", "pip", "install", "-r", str(repo / "requirements.txt"), "--no-cache-dir"], 1200,
              env=containers.pip_environment(PIP_CONSTRAINT=str(constraint)))
    install_s = time.perf_counter() - start
    install_mb = containers.new_bytes(venv) / 1e6  # before the server writes its bytecode caches
    after = containers.installed(python)

    port = free_port()
    log = root / "toolkit.log"
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "HF_MODEL_DIR": str(repo), "HF_HUB_OFFLINE": "1"}
    workdir = root / "app"
    workdir.mkdir()
    command = [str(python), "-m", "uvicorn", "huggingface_inference_toolkit.webservice_starlette:app",
               "--host", "127.0.0.1", "--port", str(port)]
    with containers.serving(command, env, workdir, log, port) as (url, _):
        yield containers.Container(url=url, python=python, repo=repo, log=log, before=before, after=after,
                                   install_s=install_s, install_mb=install_mb,
                                   installer_output=pip.stdout)


def test_requirements_keep_the_image_torch_and_install_the_pinned_generation(endpoint):
    containers.check_start(endpoint, ROOT / "requirements.txt")
    containers.report_start("toolkit", endpoint, "pip install -r requirements.txt --no-cache-dir")
    assert containers.downloads(endpoint.installer_output), endpoint.installer_output[-2000:]  # pip printed them


def test_health_answers(endpoint):
    response = httpx.get(f"{endpoint.url}/health", timeout=10)
    assert (response.status_code, response.text) == (200, "Ok")


def test_bad_request_is_an_answer_not_an_error(endpoint):
    response = httpx.post(endpoint.url, json={"inputs": {"prompt": "x", "num_frames": 0}}, timeout=60)
    assert response.status_code == 200  # the toolkit answers what the handler returns
    body = response.json()
    assert body["ok"] is False and body["error"]["field"] == "num_frames", body


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_readme_curl_examples_verbatim(endpoint, tmp_path):
    containers.check_readme_curls(endpoint.url, tmp_path, endpoint.log)


def test_a_job_runs_on_the_endpoint_with_the_cli_client(endpoint, tmp_path, capsys):
    """The toolkit runs one handler call at a time: the job runs on the handler's own thread, so
    polls answer while it generates; the CLI client submits, polls, cancels and writes the file."""
    from video_endpoint import cli

    out = tmp_path / "clip.gif"
    code = cli.main(["generate", "--url", endpoint.url, "--token", "hf_test", "--prompt", "waves", "--frames",
                     "12", "--height", "64", "--width", "96", "--steps", "4", "--poll", "0.1", "-o", str(out)])
    assert code == 0, capsys.readouterr().err + endpoint.log_tail()
    assert json.loads(capsys.readouterr().out)["num_frames"] == 12
    assert decode_gif(out.read_bytes()).frames.shape == (12, 64, 96, 3)
    containers.check_job_to_completion(endpoint.url)
    long = {"prompt": "waves", "height": 64, "width": 96, "num_frames": 9, "num_inference_steps": 100}
    job = httpx.post(endpoint.url, json={"inputs": {**long, "async": True}}, timeout=60).json()["job"]
    started = time.monotonic()
    answer = httpx.post(endpoint.url, json={"inputs": {"job_id": job["id"]}}, timeout=60).json()
    assert answer["job"]["status"] in ("queued", "running") and time.monotonic() - started < 5
    httpx.post(endpoint.url, json={"inputs": {"job_id": job["id"], "cancel": True}}, timeout=60)
    answer = containers.poll_job(endpoint.url, job["id"], timeout=60, every=0.1)
    assert answer["job"]["status"] == "cancelled" and answer["job"]["progress"]["step"] < 100


def test_every_family_serves_both_modes_on_the_endpoint_versions(endpoint, tiny_models):
    from pipelines import tiny

    # the tiny models this process's diffusers can build (Kandinsky 6's classes are not in the toolkit generation)
    models = {model_id: str(tiny_models(model_id)) for model_id in tiny.BUILDERS if tiny.buildable(model_id)}
    containers.check_every_family(endpoint.python, endpoint.repo, models, by_path=False, home=endpoint.repo.parent)


def test_image_packages_follow_the_toolkit_pins():
    """IMAGE_PACKAGES carries every `==` pin of what the Dockerfile installs from the toolkit's
    setup.py (install_requires and the torch, st and diffusers extras) but torch's (see above): a
    new snapshot with other pins fails here until the emulation follows it."""
    lists: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse((TOOLKIT / "setup.py").read_text())):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            target = node.targets[0]
            name = target.id if isinstance(target, ast.Name) else ast.literal_eval(target.slice)  # extras["st"]
            lists[name] = ast.literal_eval(node.value)
    installed_specs = lists["install_requires"] + lists["torch"] + lists["st"] + lists["diffusers"]

    def pins(specs: list[str]) -> set[tuple[str, str]]:
        return {(re.sub(r"\[.*\]", "", name), version)
                for name, _, version in (spec.partition("==") for spec in specs) if version}

    assert pins(installed_specs) - pins(IMAGE_PACKAGES) == {("torch", "2.5.1")}
