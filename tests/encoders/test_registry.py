from __future__ import annotations

import ast
import base64
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from encoders import registry
from encoders.base import FormatOptions
from video_endpoint.request_schema import VideoRequest

ENCODER_DIR = Path(registry.__file__).parent
ROOT = ENCODER_DIR.parent


def test_every_format_module_is_registered_with_its_parts():
    helpers = {"__init__", "base", "cores", "registry", "worker_processes"}
    modules = {p.stem for p in ENCODER_DIR.glob("*.py") if p.stem not in helpers and not p.stem.startswith("_")}
    assert modules == set(registry.FORMATS) == {"gif", "webm", "mp4", "zip", "wav", "thumbnail", "spritesheet"}
    assert len({module.EXT for module in registry.FORMATS.values()}) == len(registry.FORMATS)  # the CLI picks by it
    for name, module in registry.FORMATS.items():
        assert name == module.NAME and module.EXT.startswith(".") and "/" in module.MIME
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


def test_a_module_missing_part_of_the_contract_is_refused(monkeypatch):
    half = types.ModuleType("encoders.half")
    half.NAME, half.MIME, half.EXT = "half", "x/half", ".half"
    monkeypatch.setattr(registry.importlib, "import_module", lambda name: half)
    lacks = r"encoders/half.py is not an output format: it lacks MAX_FPS, NEEDS_AUDIO, STREAMS, ENCODE_COST, Options"
    with pytest.raises(ImportError, match=lacks):
        registry._load("half")


THROWAWAY_FORMAT = '''"""Frames as concatenated binary PPM images: a format added by the registry test."""

from encoders.base import Clip, FormatOptions

NAME, MIME, EXT = "ppm", "image/x-portable-pixmap", ".ppm"
MAX_FPS = 60
NEEDS_AUDIO = False
STREAMS = False
ENCODE_COST = 0.2


class Options(FormatOptions):
    """`"ppm": {"fps": int}`."""


def encode(clip: Clip, options: Options) -> bytes:
    header = f"P6 {clip.width} {clip.height} 255\\n".encode()
    return b"".join(header + frame.tobytes() for frame in clip.frames)
'''

THROWAWAY_REQUEST = '''
import base64, json, sys
from handler import EndpointHandler
from video_endpoint.request_schema import markdown_table
handler = EndpointHandler(sys.argv[1])
result = handler({"inputs": {"prompt": "x", "num_frames": 9, "height": 64, "width": 96, "num_inference_steps": 2,
                             "outputs": ["ppm", "gif"], "ppm": {"fps": 5}}})
too_fast = handler({"inputs": {"prompt": "x", "outputs": ["ppm"], "ppm": {"fps": 61}}})
print(json.dumps({"result": result, "too_fast": too_fast, "table": markdown_table()}))
'''


def test_a_new_format_is_one_module_plus_one_line(tmp_path, tiny_model_dir):
    """In a copy of the code: write encoders/ppm.py and add its name to PLUGINS, nothing else. The
    handler, the request schema (its options and its fps bound), README's table and the CLI serve it."""
    copy = tmp_path / "repo"
    for part in ("video_endpoint", "pipelines", "encoders"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "handler.py", copy / "handler.py")
    (copy / "encoders" / "ppm.py").write_text(THROWAWAY_FORMAT)
    registry_file = copy / "encoders" / "registry.py"
    before = registry_file.read_text().splitlines()
    registry_file.write_text(registry_file.read_text().replace(
        'PLUGINS = ("gif", "webm", "mp4", "zip", "wav", "thumbnail", "spritesheet")',
        'PLUGINS = ("gif", "webm", "mp4", "zip", "wav", "thumbnail", "spritesheet", "ppm")'))
    changed = [(a, b) for a, b in zip(before, registry_file.read_text().splitlines(), strict=True) if a != b]
    assert len(changed) == 1  # the one line

    run = subprocess.run([sys.executable, "-c", THROWAWAY_REQUEST, str(tiny_model_dir)], cwd=copy,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.splitlines()[-1])
    result = answer["result"]
    assert result["ok"] is True, result
    frames = base64.b64decode(result["outputs"]["ppm_base64"]).split(b"P6 96 64 255\n")[1:]
    assert len(frames) == 9 and all(len(frame) == 64 * 96 * 3 for frame in frames)
    ppm_bytes = 9 * (len(b"P6 96 64 255\n") + 64 * 96 * 3)
    described = result["diagnostics"]["outputs"]["ppm"]
    assert described.pop("threads") >= 1
    assert described == {"mime": "image/x-portable-pixmap", "bytes": ppm_bytes, "fps": 5}
    assert answer["too_fast"]["error"]["field"] == "ppm.fps"  # its MAX_FPS
    assert "ppm" in answer["table"]

    out = tmp_path / "out.ppm"
    cli = subprocess.run([sys.executable, "-m", "video_endpoint", "generate", "--model", str(tiny_model_dir),
                          "--prompt", "x", "--frames", "9", "--height", "64", "--width", "96", "--steps", "2",
                          "-o", str(out)], cwd=copy, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert out.read_bytes().count(b"P6 96 64 255\n") == 9
