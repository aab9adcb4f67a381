from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
# the two library generations (README "Deploy"): what each container's requirements.txt pins
GENERATIONS = ("requirements.txt", "requirements-current.txt")
HF_STACK = ("diffusers", "transformers", "huggingface_hub", "tokenizers", "accelerate", "peft", "safetensors")


def requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))]


def requirement_names(name: str) -> dict[str, str]:
    return {line.split("==")[0].split(">=")[0].split("<")[0]: line for line in requirement_lines(name)}


def test_server_extra_is_installed_for_development():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["server"]
    assert set(extra) <= set(requirement_lines("requirements-dev.txt"))


def test_runtime_requirements_leave_the_container_server_alone():
    for generation in GENERATIONS:
        runtime = " ".join(requirement_lines(generation))
        for package in ("starlette", "uvicorn", "fastapi"):
            assert package not in runtime, generation  # each container brings its own server
        assert "torch>=" in runtime and "torch==" not in runtime  # the container's own torch satisfies it


def test_both_generations_pin_the_whole_hugging_face_stack_and_share_the_rest():
    toolkit, current = (requirement_names(generation) for generation in GENERATIONS)
    assert set(toolkit) == set(current)
    for name in HF_STACK:
        assert "==" in toolkit[name] and "==" in current[name], name
    shared = set(toolkit) - {*HF_STACK, "torch"}
    assert {name: toolkit[name] for name in shared} == {name: current[name] for name in shared}
    assert toolkit["transformers"].split("==")[1].startswith("4.")  # what the toolkit and hf-serve rc7 import with
    assert int(current["transformers"].split("==")[1].split(".")[0]) >= 5  # what hf-serve 0.2 needs


def test_pip_install_installs_the_runtime_and_the_client_needs_a_part_of_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["dependencies"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    client = requirement_lines("requirements-client.txt")
    assert client and not any(line.startswith("torch") for line in client)
    for generation in GENERATIONS:  # the client's pins are the runtime's: the same code runs on both
        assert set(client) <= set(requirement_lines(generation)), generation
