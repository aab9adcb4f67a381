from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from pipelines.base import SpeedSettings
from video_endpoint import settings
from video_endpoint.request_schema import Limits
from video_endpoint.server import ServerSettings

ROOT = Path(__file__).resolve().parents[2]


def test_only_the_settings_module_reads_the_environment():
    """Every VIDEO_* variable is read through video_endpoint.settings, and every name the code
    asks for is listed there."""
    sources = [ROOT / "handler.py", *(p for part in ("video_endpoint", "pipelines", "encoders")
                                      for p in (ROOT / part).rglob("*.py"))]
    asked_for = set()
    for path in sources:
        text = path.read_text()
        if path.name != "settings.py":
            assert not re.search(r"os\.environ|getenv", text), f"{path} reads the environment itself"
        asked_for |= set(re.findall(r'"((?:VIDEO|XDG)_[A-Z_]+|HF_TOKEN)"', text))
    assert asked_for - {"VIDEO_"} <= set(settings.BY_NAME)
    assert {name for name in settings.BY_NAME if name not in asked_for} == set()  # none listed for nothing


def test_typed_readers_name_the_variable_on_bad_values():
    with pytest.raises(ValueError, match="VIDEO_QUEUE_DEPTH must be an integer"):
        settings.read_int("VIDEO_QUEUE_DEPTH", {"VIDEO_QUEUE_DEPTH": "four"})
    with pytest.raises(ValueError, match="VIDEO_WARMUP must be 0 or 1"):
        settings.read_flag("VIDEO_WARMUP", {"VIDEO_WARMUP": "maybe"})
    with pytest.raises(KeyError):
        settings.read("VIDEO_NOT_A_SETTING", {})


def test_encode_threads_default_to_the_cores_available_and_refuse_less_than_one():
    from encoders import cores

    assert settings.encode_threads({}) == cores.available()
    assert settings.encode_threads({"VIDEO_ENCODE_THREADS": "3"}) == 3
    for bad in ("0", "-2", "all"):
        with pytest.raises(ValueError, match="VIDEO_ENCODE_THREADS"):
            settings.encode_threads({"VIDEO_ENCODE_THREADS": bad})


def test_each_reader_takes_its_defaults_from_the_one_table():
    environ: dict[str, str] = {}
    limits, server = Limits.from_env(environ), ServerSettings.from_env(environ)
    for field, name in Limits.ENV.items():
        assert getattr(limits, field) == int(settings.BY_NAME[name].default) == getattr(Limits(), field)
    assert server.queue_depth == int(settings.BY_NAME["VIDEO_QUEUE_DEPTH"].default)
    assert server.max_body_bytes == int(settings.BY_NAME["VIDEO_MAX_BODY_BYTES"].default)
    assert server.token is None
    speed = settings.speed_settings(torch.device("cpu"), environ)
    assert speed.vae_tiling == settings.BY_NAME["VIDEO_VAE_TILING"].default
    # set values win, and blank ones count as unset
    assert Limits.from_env({"VIDEO_MAX_FRAMES": "16", "VIDEO_MAX_STEPS": " "}).max_frames == 16
    assert Limits.from_env({"VIDEO_MAX_STEPS": " "}).max_steps == Limits().max_steps


def test_the_tiny_cache_folder_readme_names_is_the_one_used(monkeypatch):

    monkeypatch.delenv("VIDEO_TINY_MODEL_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    shown = settings.BY_NAME["VIDEO_TINY_MODEL_DIR"].shown_default or ""
    assert str(settings.tiny_model_dir()).replace(str(Path.home()), "~") in shown
    assert settings.tiny_model_dir("tiny-wan", {"VIDEO_TINY_MODEL_DIR": "/srv/tiny"}) == Path("/srv/tiny-tiny-wan")


def test_speed_defaults_fast_on_cuda_plain_on_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert settings.speed_settings(cpu, {}) == SpeedSettings()
    assert settings.speed_settings(cuda, {}) == SpeedSettings(compile=True, warmup=True, stream_encode=True)
    switched = settings.speed_settings(cuda, {"VIDEO_COMPILE": "0", "VIDEO_STEP_CACHE": "0.05",
                                              "VIDEO_CPU_OFFLOAD": "1", "VIDEO_STREAM_ENCODE": "0"})
    assert switched == SpeedSettings(compile=False, warmup=False, step_cache=0.05, cpu_offload=True)
    assert settings.speed_settings(cpu, {"VIDEO_STREAM_ENCODE": "1"}).stream_encode
    assert not settings.speed_settings(cpu, {"VIDEO_CPU_OFFLOAD": "1"}).cpu_offload  # GPU only
    for bad in ({"VIDEO_COMPILE": "maybe"}, {"VIDEO_STEP_CACHE": "fast"}, {"VIDEO_STREAM_ENCODE": "auto"}):
        with pytest.raises(ValueError):
            settings.speed_settings(cpu, bad)
