"""pipelines/base.py: what every family shares, on both library generations."""

from __future__ import annotations

import warnings

import pytest
import torch
from diffusers import LTXImageToVideoPipeline, LTXPipeline

from pipelines.base import load_both_modes


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
