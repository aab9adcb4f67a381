"""Which model the endpoint loads, from the path, the argument or the settings."""

from __future__ import annotations

import pytest

from pipelines.errors import ModelLoadError
from video_endpoint import model_loading, settings


def test_source_prefers_the_path_then_the_environment_then_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("VIDEO_MODEL_ID", raising=False)
    assert model_loading.resolve_source(tmp_path)[0] == settings.BY_NAME["VIDEO_MODEL_ID"].default
    monkeypatch.setenv("VIDEO_MODEL_ID", "someone/some-ltx")
    assert model_loading.resolve_source(tmp_path)[0] == "someone/some-ltx"
    (tmp_path / "model_index.json").write_text("{}")
    assert model_loading.resolve_source(tmp_path)[0] == str(tmp_path)


def test_a_path_that_is_not_there_is_never_taken_for_a_hub_id(tmp_path):
    for missing in ("/nonexistent/dir", "./relative", "~/models/x", "a/b/c"):
        with pytest.raises(ModelLoadError, match="no model directory"):
            model_loading.resolve_source(tmp_path, missing)
    assert model_loading.resolve_source(tmp_path, "org/name")[0] == "org/name"


def test_a_forced_family_must_exist(tiny_model_dir):
    with pytest.raises(ModelLoadError, match=r"VIDEO_MODEL_FAMILY=sora names no family.*ltx-video, wan"):
        model_loading.load_model(str(tiny_model_dir), environ={"VIDEO_MODEL_FAMILY": "sora"})
    model = model_loading.load_model(str(tiny_model_dir), environ={"VIDEO_MODEL_FAMILY": "ltx-video"})
    assert model.family.FAMILY == "ltx-video"
