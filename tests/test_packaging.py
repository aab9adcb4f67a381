from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def requirement_lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))]


def test_server_extra_is_installed_for_development():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["server"]
    assert set(extra) <= set(requirement_lines("requirements-dev.txt"))


def test_runtime_requirements_leave_the_endpoint_server_alone():
    runtime = " ".join(requirement_lines("requirements.txt"))
    for package in ("starlette", "uvicorn", "fastapi"):
        assert package not in runtime  # the hosted toolkit brings its own (starlette < 1.0)
    assert "torch>=" in runtime and "torch==" not in runtime  # the Endpoint's own torch satisfies it
