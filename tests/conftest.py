from __future__ import annotations

import base64
import io
import logging

import numpy as np
import pytest
from PIL import Image

from handler import EndpointHandler
from pipelines import tiny

# Small sizes keep a full request on the tiny model well under a second on 2 CPU cores.
SMALL = {"height": 64, "width": 96, "num_inference_steps": 2}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny random-weight LTX-Video pipeline, built once and saved like a real checkpoint."""
    return tiny.build(tmp_path_factory.mktemp("models") / "tiny-ltx")


@pytest.fixture(scope="session")
def handler(tiny_model_dir) -> EndpointHandler:
    """Created the way the Endpoint creates it: once, from the model directory."""
    return EndpointHandler(str(tiny_model_dir))


@pytest.fixture(autouse=True)
def _quiet_libraries():
    logging.getLogger("diffusers").setLevel(logging.ERROR)


def jpeg_base64(width: int = 80, height: int = 48, **save_args) -> str:
    """A real JPEG (a gradient with a bright block), base64 encoded as a client would send it."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], -1).astype(np.uint8)
    rgb[: height // 2, : width // 3] = (255, 255, 255)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90, **save_args)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
