"""scripts/hub_repo.sh: what to push for each container, and handler.py importable wherever it lands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.deploy.containers import ROOT, exported_variables

CONTAINERS = {"toolkit": "requirements.txt", "hf-dlc": "requirements.txt", "hf-serve": "requirements-current.txt"}


def hub_repo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "hub_repo.sh"), *args], capture_output=True, text=True,
                          timeout=60)


def test_help_lists_every_container():
    done = hub_repo("--help")
    assert done.returncode == 0
    for name in CONTAINERS:
        assert f"\n  {name} " in done.stdout


@pytest.mark.parametrize("container", [*CONTAINERS, None])
def test_each_container_gets_its_generation_and_its_variables(container, tmp_path):
    done = hub_repo(*(["--container", container] if container else []), str(tmp_path))
    assert done.returncode == 0, done.stderr
    container = container or "toolkit"  # the default
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "encoders", "handler.py", "pipelines", "requirements.txt", "video_endpoint"]
    assert (tmp_path / "requirements.txt").read_text() == (ROOT / CONTAINERS[container]).read_text()
    assert not list(tmp_path.rglob("__pycache__"))
    expected = {} if container == "toolkit" else {"HF_TASK": "custom", "HF_TRUST_REMOTE_CODE": "1"}
    assert exported_variables(done.stdout) == expected
    start = "  bash -c 'uv pip install -r /repository/requirements.txt --no-cache-dir && exec hf-serve'"
    assert (start in done.stdout.splitlines()) == (container == "hf-dlc")  # the entrypoint override it needs


def test_an_unknown_container_is_refused_by_name(tmp_path):
    done = hub_repo("--container", "sagemaker", str(tmp_path))
    assert done.returncode == 2 and "unknown container: sagemaker" in done.stderr
    assert not list(tmp_path.iterdir())


def test_handler_imports_by_file_path_with_a_clean_sys_path(tmp_path):
    """hf-serve's way: `spec_from_file_location` on a directory that is neither on sys.path nor the
    working directory; -I keeps PYTHONPATH, the user site and the working directory out."""
    repo = tmp_path / "repository"
    assert hub_repo(str(repo)).returncode == 0
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('handler', {str(repo / 'handler.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(json.dumps({name: sys.modules[name].__file__ for name in ('video_endpoint', 'pipelines', 'encoders')}"
        " | {'handler': module.EndpointHandler.__module__}))\n")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    files = json.loads(done.stdout.splitlines()[-1])
    assert files.pop("handler") == "video_endpoint.endpoint"
    for name, path in files.items():  # the copy's packages, not this checkout's (installed editable here)
        assert path.startswith(str(repo)), (name, path)
