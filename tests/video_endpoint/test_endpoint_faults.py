"""Faults inside a request (out of memory, a failing step callback, a missing or failing ffmpeg)
end in `ok: false`, release the model, and the next request is served. Faults are injected into
the real pipeline and the real encoder process, not into a stand-in for the handler."""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import tracemalloc
import zlib

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from handler import EndpointHandler
from pipelines import tiny
from tests.conftest import GOOD_SMALL_REQUEST, SMALL
from tests.media import zip_frames
from video_endpoint.errors import InvalidRequest, ModelLoadError
from video_endpoint.image_input import decode_image
from video_endpoint.request_schema import Limits
from video_endpoint.server import ServerSettings, create_app

REQUEST = {"inputs": {"prompt": "x", **SMALL, "num_frames": 3, "seed": 1}}


def cuda_oom(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def assert_serves(handler):
    assert handler(GOOD_SMALL_REQUEST)["ok"] is True
    assert not handler.model._lock.locked()


def test_out_of_memory_during_denoising(handler):
    result = handler(REQUEST, on_step=lambda done, total: cuda_oom())
    assert result["ok"] is False
    assert result["error"]["type"] == "out_of_memory"
    assert "fewer frames or a smaller size" in result["error"]["message"]
    assert_serves(handler)


def test_out_of_memory_during_vae_decode(handler, monkeypatch):
    monkeypatch.setattr(handler.model.pipelines.t2v.vae, "decode", cuda_oom)
    assert handler(REQUEST)["error"]["type"] == "out_of_memory"
    monkeypatch.undo()
    assert_serves(handler)


def test_failing_step_callback_is_an_internal_error_without_details(handler, caplog):
    def broken(done, total):
        raise RuntimeError("callback exploded at /secret/path.py")

    result = handler(REQUEST, on_step=broken)
    assert result == {"ok": False, "error": {"type": "internal", "field": None,
                                             "message": "internal error while generating; see the server log"}}
    assert "callback exploded" in caplog.text  # the traceback goes to the log
    assert_serves(handler)


@pytest.mark.parametrize("fault", ["missing", "failing"])
def test_ffmpeg_missing_or_failing_names_the_output(handler, monkeypatch, fault):
    def missing():
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", missing if fault == "missing" else lambda: "/bin/false")
    result = handler({"inputs": {**REQUEST["inputs"], "outputs": ["gif", "webm"]}})
    assert result["ok"] is False
    assert (result["error"]["type"], result["error"]["field"]) == ("internal", "outputs.webm")
    assert "/bin/false" not in result["error"]["message"]
    assert handler({"inputs": {**REQUEST["inputs"], "outputs": ["gif"]}})["ok"] is True
    monkeypatch.undo()
    assert handler({"inputs": {**REQUEST["inputs"], "outputs": ["webm"]}})["ok"] is True


def test_server_keeps_serving_after_faults(handler, monkeypatch):
    app = create_app(lambda: handler, ServerSettings())
    with TestClient(app) as client:
        monkeypatch.setattr(handler.model.pipelines.t2v.vae, "decode", cuda_oom)
        failed = client.post("/", json=REQUEST)
        assert failed.status_code == 500 and failed.json()["error"]["type"] == "out_of_memory"
        monkeypatch.undo()
        monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: "/bin/false")
        failed = client.post("/", json={"inputs": {**REQUEST["inputs"], "outputs": ["mp4"]}})
        assert failed.status_code == 500 and failed.json()["error"]["field"] == "outputs.mp4"
        monkeypatch.undo()
        assert client.post("/", json=REQUEST).status_code == 200




def test_eight_concurrent_requests_get_exactly_their_own_frames(handler):
    requests = [{"inputs": {"prompt": f"scene {seed}", **SMALL, "num_frames": 2, "seed": seed,
                            "outputs": ["zip"]}} for seed in range(8)]
    alone = [zip_frames(handler(request)) for request in requests]
    results: list = [None] * 8
    start = threading.Barrier(8)

    def send(index):
        start.wait()
        results[index] = handler(requests[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(8):
        np.testing.assert_array_equal(zip_frames(results[index]), alone[index])


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and header claiming width x height, with one tiny data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + data + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(50_000, 50_000), (9_000, 9_000)])
def test_decompression_bomb_is_refused_from_the_header(size):
    text = base64.b64encode(png_header_only(*size)).decode()
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(InvalidRequest) as failure:
        decode_image(text, 64, 64, Limits())
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert failure.value.field == "image" and "VIDEO_MAX_IMAGE_PIXELS" in failure.value.message
    assert elapsed < 0.5 and peak < 5 * 2**20


def test_pickled_weights_are_never_loaded(tmp_path):
    from diffusers import LTXPipeline
    pipe = LTXPipeline.from_pretrained(str(tiny.ensure(tmp_path / "safe")))
    pipe.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    pickled = tmp_path / "pickled"  # (transformers writes the text encoder as safetensors regardless)
    assert list((pickled / "transformer").glob("*.bin")) and not list((pickled / "transformer").glob("*.safetensors"))
    with pytest.raises(ModelLoadError):
        EndpointHandler(str(tmp_path / "pickled"))


def test_image_formats_outside_the_list_are_refused():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="ICO")
    with pytest.raises(InvalidRequest) as failure:
        decode_image(base64.b64encode(buffer.getvalue()).decode(), 32, 32, Limits())
    assert failure.value.field == "image"
