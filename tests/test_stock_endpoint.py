"""The stock Inference Endpoint container, emulated on this machine: the deployment README gives.

The container (../shared/hf-inference-toolkit, SNAPSHOT.md there) is Hugging Face's inference
toolkit over a Python 3.11 image with pinned libraries; its entrypoint runs
`pip install -r requirements.txt` from the model repository, then serves `handler.py` with the
toolkit's starlette app. Here:
1. a virtualenv like the image: the toolkit (`--no-deps`) and IMAGE_PACKAGES, resolved as PyPI
   stood on the snapshot's date, with this machine's torch (the image's CUDA torch 2.5.1 cannot be
   had here); cached, keyed on everything that goes into it;
2. a hard-linked copy of it, into which `pip install -r requirements.txt --no-cache-dir` runs as the
   entrypoint runs it, from PyPI alone, timed and with its downloads counted;
3. a Hub repository laid out by scripts/hub_repo.sh (what README says to push) plus a tiny
   checkpoint, served by the toolkit's app under uvicorn on 127.0.0.1;
4. README's curl examples verbatim against it, a bad request, GET /health; and every tiny family
   loaded by the same handler in that Python.
When the hosted toolkit moves to newer pins, update IMAGE_PACKAGES and SNAPSHOT_DATE from
SNAPSHOT.md: this test then tells whether the project still deploys.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPORT, free_port
from tests.media import decode_gif, decode_video, decode_zip

ROOT = Path(__file__).resolve().parent.parent
TOOLKIT = ROOT.parent / "shared" / "hf-inference-toolkit"
README = ROOT / "README.md"

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
# Bump when image_venv's steps change (the cache key holds everything else that goes in).
IMAGE_RECIPE = 2
# What requirements.txt pins: development and the Endpoint must run these same versions.
HF_STACK = ("diffusers", "transformers", "huggingface-hub", "tokenizers", "accelerate", "peft", "safetensors")

pytestmark = pytest.mark.skipif(not TOOLKIT.is_dir(), reason=f"no toolkit snapshot at {TOOLKIT} (../shared)")


def pip_environment(**extra: str) -> dict[str, str]:
    """PyPI alone, as the container sees it: no machine-wide pip configuration or local wheels."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_DEFAULT_TIMEOUT="180")
    if os.environ.get("PIP_CERT"):
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    env.update(extra)
    return env


def run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def image_venv() -> Path:
    """The image's Python environment, built once per key (a few minutes) and cached."""
    torch_version = importlib.metadata.version("torch")
    toolkit_files = sorted(p for p in TOOLKIT.rglob("*") if p.is_file())
    key = hashlib.sha256(json.dumps([
        IMAGE_RECIPE, IMAGE_PACKAGES, SNAPSHOT_DATE, torch_version, sys.version,
        [(str(p.relative_to(TOOLKIT)), hashlib.sha256(p.read_bytes()).hexdigest()) for p in toolkit_files],
    ]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "video-endpoint"
    venv = cache / f"stock-endpoint-{key}"
    if (venv / "bin" / "python").exists():
        return venv
    staging = cache / f".stock-endpoint-{key}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(staging)], 120)
    python = str(staging / "bin" / "python")
    # this machine's torch, from wherever development got it (the local wheel where there is one)
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], 600)
    run([python, "-m", "pip", "install", "-q", f"torch=={torch_version}"], 900)
    constraint = staging / "torch-constraint.txt"
    constraint.write_text(f"torch=={torch_version}\n")
    dated = ["--uploaded-prior-to", SNAPSHOT_DATE]
    run([python, "-m", "pip", "install", "-q", *dated, "-c", str(constraint), *IMAGE_PACKAGES], 1800,
        env=pip_environment())
    # pip builds a source tree in place: build a writable copy (CI's shared/ is read-only)
    source = staging / "toolkit-source"
    shutil.copytree(TOOLKIT, source, copy_function=shutil.copyfile)
    for path in (source, *source.rglob("*")):
        path.chmod(path.stat().st_mode | 0o200)
    run([python, "-m", "pip", "install", "-q", "--no-deps", str(source)], 600, env=pip_environment())
    shutil.rmtree(source)
    # the image's pip (the newest on its date), which the entrypoint runs
    run([python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", *dated, "pip"], 600,
        env=pip_environment())
    staging.rename(venv)
    return venv


def installed(python: Path) -> dict[str, str]:
    listing = run([str(python), "-m", "pip", "list", "--format", "json"], 120, env=pip_environment())
    return {item["name"].lower().replace("_", "-"): item["version"] for item in json.loads(listing.stdout)}


def downloads(pip_output: str) -> list[tuple[str, float]]:
    """(file, MB) for each `Downloading name (12.3 MB)` line pip printed."""
    scale = {"kB": 1e-3, "MB": 1.0, "GB": 1e3}
    return [(name, float(size) * scale[unit])
            for name, size, unit in re.findall(r"Downloading (\S+) \(([\d.]+) (kB|MB|GB)\)", pip_output)]


def readme_curl_examples() -> str:
    """The bash block of README's deploy section, verbatim."""
    section = README.read_text().split("## Deploy as a Hugging Face Inference Endpoint", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return block


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, tiny_model_dir):
    """The container started on a Hub repository holding the tiny checkpoint: its URL and Python."""
    root = tmp_path_factory.mktemp("stock-endpoint")
    base = image_venv()
    venv = root / "venv"
    run(["cp", "-al", str(base), str(venv)], 300)  # hard links: pip replaces files, never edits them
    python = venv / "bin" / "python"
    before = installed(python)

    repo = root / "repo"
    shutil.copytree(tiny_model_dir, repo)
    run(["bash", str(ROOT / "scripts" / "hub_repo.sh"), str(repo)], 60)

    # the entrypoint's step, from PyPI; the constraint only makes a torch replacement fail fast here
    # (on the Endpoint it would download ~3 GB) instead of downloading a CUDA torch
    constraint = root / "keep-torch.txt"
    constraint.write_text(f"torch=={before['torch']}\n")
    start = time.perf_counter()
    pip = run([str(python), "-m", "pip", "install", "-r", str(repo / "requirements.txt"), "--no-cache-dir"], 1200,
              env=pip_environment(PIP_CONSTRAINT=str(constraint)))
    install_s = time.perf_counter() - start
    after = installed(python)

    port = free_port()
    log_path = root / "toolkit.log"
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "HF_MODEL_DIR": str(repo), "HF_HUB_OFFLINE": "1"}
    workdir = root / "app"
    workdir.mkdir()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(python), "-m", "uvicorn", "huggingface_inference_toolkit.webservice_starlette:app",
             "--host", "127.0.0.1", "--port", str(port)], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the toolkit did not start:\n" + log_path.read_text()[-5000:])
        time.sleep(0.5)
    yield {"url": url, "python": python, "repo": repo, "before": before, "after": after,
           "downloads": downloads(pip.stdout), "install_s": install_s, "pip_output": pip.stdout, "log": log_path}
    process.terminate()
    process.wait(timeout=30)


def test_requirements_keep_the_image_torch_and_match_development(endpoint):
    before, after = endpoint["before"], endpoint["after"]
    assert after["torch"] == before["torch"]  # requirements.txt leaves the image's torch alone
    for name in HF_STACK:  # one set of versions: development and CI run what the Endpoint runs
        assert after[name] == importlib.metadata.version(name), (name, after[name])
    files = endpoint["downloads"]
    total_mb = sum(mb for _, mb in files)
    REPORT.append(
        f"stock Endpoint start (emulated): pip install -r requirements.txt took {endpoint['install_s']:.1f} s and "
        f"downloaded {total_mb:.1f} MB in {len(files)} files (largest: "
        + ", ".join(f"{name} {mb:.1f} MB" for name, mb in sorted(files, key=lambda f: -f[1])[:3]) + "); resolved: "
        + ", ".join(f"{name} {after[name]}" for name in ("torch", *HF_STACK)))
    assert files, endpoint["pip_output"][-2000:]  # the count would be meaningless if pip printed none


def test_health_answers(endpoint):
    response = httpx.get(f"{endpoint['url']}/health", timeout=10)
    assert (response.status_code, response.text) == (200, "Ok")


def test_bad_request_is_an_answer_not_an_error(endpoint):
    response = httpx.post(endpoint["url"], json={"inputs": {"prompt": "x", "num_frames": 0}}, timeout=60)
    assert response.status_code == 200  # the toolkit answers what the handler returns
    body = response.json()
    assert body["ok"] is False and body["error"]["field"] == "num_frames", body


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_readme_curl_examples_verbatim(endpoint, tmp_path):
    # a photo-sized JPEG: its base64 is over Linux's 128 KiB limit for one command-line argument,
    # which the card's own `-d "...$IMG_B64..."` hits
    photo = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "my_input.jpg", quality=90)
    assert (tmp_path / "my_input.jpg").stat().st_size * 4 / 3 > 128 * 1024
    script = (readme_curl_examples().replace("https://<ENDPOINT>.aws.endpoints.huggingface.cloud", endpoint["url"])
              .replace("<TOKEN>", "hf_test"))
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr + endpoint["log"].read_text()[-3000:]
    gif = decode_gif((tmp_path / "output.gif").read_bytes())
    assert gif.frames.shape == (24, 512, 512, 3)
    assert sum(gif.durations_ms) == pytest.approx(2000, abs=10)  # 24 frames at the card's 12 fps
    assert decode_gif((tmp_path / "animated.gif").read_bytes()).frames.shape == (32, 512, 512, 3)
    video = decode_video((tmp_path / "output.webm").read_bytes())
    assert (video.codec, video.frames.shape, video.fps) == ("vp9", (48, 512, 512, 3), 24)


def test_a_job_runs_on_the_endpoint_with_the_cli_client(endpoint, tmp_path, capsys):
    """The toolkit runs one handler call at a time: the job runs on the handler's own thread, so
    polls answer while it generates; the CLI client submits, polls, cancels and writes the file."""
    from video_endpoint import cli

    out = tmp_path / "clip.gif"
    code = cli.main(["generate", "--url", endpoint["url"], "--token", "hf_test", "--prompt", "waves", "--frames",
                     "12", "--height", "64", "--width", "96", "--steps", "4", "--poll", "0.1", "-o", str(out)])
    assert code == 0, capsys.readouterr().err + endpoint["log"].read_text()[-3000:]
    assert json.loads(capsys.readouterr().out)["num_frames"] == 12
    assert decode_gif(out.read_bytes()).frames.shape == (12, 64, 96, 3)
    long = {"prompt": "waves", "height": 64, "width": 96, "num_frames": 9, "num_inference_steps": 100}
    job = httpx.post(endpoint["url"], json={"inputs": {**long, "async": True}}, timeout=60).json()["job"]
    started = time.monotonic()
    answer = httpx.post(endpoint["url"], json={"inputs": {"job_id": job["id"]}}, timeout=60).json()
    assert answer["job"]["status"] in ("queued", "running") and time.monotonic() - started < 5
    httpx.post(endpoint["url"], json={"inputs": {"job_id": job["id"], "cancel": True}}, timeout=60)
    deadline = time.monotonic() + 60
    while (answer := httpx.post(endpoint["url"], json={"inputs": {"job_id": job["id"]}}, timeout=60).json())[
            "job"]["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert answer["job"]["status"] == "cancelled" and answer["job"]["progress"]["step"] < 100


def test_every_family_serves_both_modes_on_the_endpoint_versions(endpoint, tiny_models):
    from pipelines import tiny

    models = {model_id: str(tiny_models(model_id)) for model_id in tiny.BUILDERS}
    done = run([str(endpoint["python"]), str(ROOT / "tests" / "stock_endpoint_probe.py"), str(endpoint["repo"]),
                json.dumps(models)], 900, env={"PATH": os.environ["PATH"], "HOME": str(endpoint["repo"].parent)})
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    served = {(a["model"], a["mode"]) for a in answers}
    assert {model for model, _ in served} == set(models)
    assert {mode for _, mode in served} == {"t2v", "i2v"}
    for answer in answers:
        result = answer["result"]
        assert result["ok"] is True, answer
        frames = decode_zip(base64.b64decode(result["outputs"]["zip_base64"])).frames
        assert frames.shape == (9, 64, 96, 3), (answer["model"], answer["mode"], frames.shape)
        assert result["diagnostics"]["mode"] == answer["mode"]


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
