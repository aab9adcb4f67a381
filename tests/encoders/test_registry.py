from __future__ import annotations

import ast
from pathlib import Path

import pytest

from encoders import registry
from encoders.base import FormatOptions
from request_schema import VideoRequest

ENCODER_DIR = Path(registry.__file__).parent


def test_every_format_module_is_registered_with_its_parts():
    modules = {p.stem for p in ENCODER_DIR.glob("*.py") if p.stem not in {"__init__", "base", "registry"}
               and not p.stem.startswith("_")}
    assert modules == set(registry.FORMATS) == {"gif", "webm", "mp4", "zip"}
    for name, module in registry.FORMATS.items():
        assert name == module.NAME and f".{name}" == module.EXT and "/" in module.MIME
        assert issubclass(module.Options, FormatOptions) and callable(module.encode)
        assert name in VideoRequest.model_fields  # its options are part of the request


def test_unknown_format_is_named():
    with pytest.raises(ValueError, match="mp3"):
        registry.get("mp3")


def test_encoders_never_import_torch_or_diffusers():
    for path in ENCODER_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"torch", "diffusers"}, path
