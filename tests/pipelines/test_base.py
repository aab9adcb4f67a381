"""pipelines/base.py: what every family shares, on both library generations."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from diffusers import LTXImageToVideoPipeline, LTXPipeline

from pipelines.base import SpeedSettings, load_both_modes


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_weights_load_in_the_asked_dtype_without_deprecation_warnings(tiny_model_dir, dtype):
    """diffusers 0.39 reads only `torch_dtype`; from 0.40 that name warns (and goes in 1.0) for `dtype`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*torch_dtype.*", category=FutureWarning)
        loaded = load_both_modes(LTXPipeline, LTXImageToVideoPipeline, str(tiny_model_dir), "LTXPipeline",
                                 torch.device("cpu"), dtype)
    for pipe in (loaded.t2v, loaded.i2v):
        assert pipe.transformer.dtype == dtype
        assert pipe.text_encoder.dtype == dtype
    assert loaded.i2v.transformer is loaded.t2v.transformer  # one copy of the weights


def test_loading_says_nothing_about_an_empty_float32_list(tiny_model_dir):
    """diffusers printed "should be kept in float32: []" twice per model at each load; a warning that
    names modules still comes through."""
    from pipelines import registry

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    said: list[str] = []
    diffusers_models = logging.getLogger("diffusers.models.modeling_utils")
    logging.getLogger("diffusers").setLevel(logging.WARNING)  # the suite's quiet level, as a user has it
    diffusers_models.addHandler(kept := Kept())
    try:
        registry.load_model(str(tiny_model_dir), "test", torch.device("cpu"), torch.float32, SpeedSettings())
        assert not [line for line in said if "kept in float32" in line]
        diffusers_models.warning("There are modules in X that should be kept in float32: ['norm']. Casting ...")
        assert [line for line in said if "kept in float32" in line] == [
            "There are modules in X that should be kept in float32: ['norm']. Casting ..."]
    finally:
        diffusers_models.removeHandler(kept)
