"""Generated garbage never breaks the handler: every answer is a JSON-able dict with `ok`, bad
input is `invalid_request` naming the field, nothing is `internal`, and the next request works.

CI runs the "ci" profile (300 examples); `HYPOTHESIS_PROFILE=long pytest tests/video_endpoint/test_endpoint_fuzz.py`
runs 2,000. How the payloads were answered is printed in the run's "measured" summary."""

from __future__ import annotations

import base64
import collections
import io
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from encoders import spritesheet
from encoders.registry import FORMATS
from tests.conftest import GOOD_SMALL_REQUEST, REPORT, jpeg_base64
from tests.media import decode_gif, decode_video, decode_zip, encoded_video, synthetic_clip
from video_endpoint.request_schema import VideoRequest

FIELDS = list(VideoRequest.model_fields)
_CLIP = encoded_video(synthetic_clip(10, 24, 40), 12)
# a valid clip, the same cut short, its first bytes on a GIF, and a still image as a video
FUZZ_VIDEOS = [base64.b64encode(data).decode() for data in (_CLIP, _CLIP[: len(_CLIP) // 2], b"GIF89a" + _CLIP[6:])]
FUZZ_VIDEOS.append(jpeg_base64(40, 24))
TALLY: collections.Counter = collections.Counter()  # answers, by kind
SENT = collections.Counter()  # payloads sent, by test

# no subnormal floats: torch 2.5's CUDA build turns on flush-to-zero, and hypothesis refuses to
# draw them then (the handler never sees a difference: JSON carries them as ordinary numbers)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False), st.text(),
    st.text(alphabet=st.characters(max_codepoint=0x20)))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
plausible = {
    "prompt": st.one_of(st.text(max_size=50), json_values),
    "image": st.one_of(st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
                       st.just(jpeg_base64(40, 24)), st.just(jpeg_base64(40, 24)[:100]),
                       st.just("data:image/png;base64,!!!"), st.text(max_size=40), json_values),
    "num_frames": st.one_of(st.integers(-3, 12), json_values),
    "fps": st.one_of(st.integers(-3, 60), json_values),
    "height": st.one_of(st.sampled_from([0, 32, 33, 64, -32, 96]), json_values),
    "width": st.one_of(st.sampled_from([0, 32, 33, 64, -32, 96]), json_values),
    "seed": st.one_of(st.integers(-5, 2**64), json_values),
    "num_inference_steps": st.one_of(st.integers(-1, 4), json_values),
    "guidance_scale": st.one_of(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False), json_values),
    "outputs": st.one_of(st.lists(st.sampled_from([*FORMATS, "mp3", ""]), max_size=4), json_values),
    "return_base64": st.one_of(st.booleans(), json_values),
    "negative_prompt": st.one_of(st.text(max_size=20), json_values),
    # conditioning: images as the image field, videos valid, cut, mislabelled or garbage
    "last_image": st.one_of(st.just(jpeg_base64(40, 24)), st.text(max_size=40), json_values),
    "keyframes": st.one_of(st.lists(st.fixed_dictionaries(
        {"image": st.one_of(st.just(jpeg_base64(40, 24)), json_values), "frame": st.one_of(st.integers(-2, 12),
                                                                                            json_values)},
        optional={"strength": st.one_of(st.floats(-1, 2), json_values), "junk": json_values}), max_size=3),
        json_values),
    "video": st.one_of(st.sampled_from(FUZZ_VIDEOS), st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
                       json_values),
    "strength": st.one_of(st.floats(-1, 2), st.just(float("nan")), json_values),
    "extend": st.one_of(st.sampled_from(FUZZ_VIDEOS), json_values),
    "upload": st.one_of(st.dictionaries(st.sampled_from([*FORMATS, "mov", ""]), st.one_of(st.sampled_from(
        ["http://127.0.0.1:9/x.mp4", "ftp://h/x", "http://u:p@h/x", "http://h/" + "a" * 2000]), json_values),
        max_size=3), json_values),
}
# the job protocol's keys: a body is routed by them (a mistake in one is answered, never raised)
job_keys = {
    "async": st.one_of(st.just(False), json_values),
    "webhook": st.one_of(st.none(), st.sampled_from(["http://evil@127.0.0.1/", "http://127.0.0.1/\r\nX: y"]),
                         json_values),
    "job_id": st.one_of(st.text(max_size=30), json_values),
    "cancel": st.one_of(st.booleans(), json_values),
}
for name in FORMATS:
    plausible[name] = st.one_of(st.fixed_dictionaries({}, optional={
        "fps": st.integers(-2, 80), "quality": st.sampled_from(["fast", "good", "best", "ultra"]),
        "junk": json_values}), json_values)

field_dicts = st.fixed_dictionaries({}, optional={**plausible, "num_frame": json_values, "": json_values})
payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"inputs": json_values}),
    st.fixed_dictionaries({"inputs": field_dicts}, optional={"parameters": st.one_of(field_dicts, json_values),
                                                             "other": json_values}),
    st.fixed_dictionaries({"inputs": st.text(max_size=30), "parameters": field_dicts}),
    st.fixed_dictionaries({"inputs": st.fixed_dictionaries({}, optional={**plausible, **job_keys})}),
)
@pytest.fixture(scope="module", autouse=True)
def _report_tally():
    yield
    if SENT:
        REPORT.append(f"fuzzed payloads: {sum(SENT.values())}; answers: {dict(sorted(TALLY.items()))}")


LEAKS = ("Traceback", "/tmp", "/root", "/work", "/home", '.py"', "site-packages")


def check_answer(payload, result) -> None:
    assert isinstance(result, dict) and isinstance(result.get("ok"), bool), result
    json.dumps(result, default=lambda value: value.hex() if isinstance(value, bytes) else None, allow_nan=False)
    if result["ok"]:
        TALLY["ok"] += 1
        return
    error = result["error"]
    TALLY[error["type"]] += 1
    assert error["type"] in {"invalid_request", "unsupported", "busy"}, error  # never internal for bad input
    assert error["message"] and not any(leak in error["message"] for leak in LEAKS), error
    if isinstance(payload, dict) and "inputs" in payload:
        assert error["field"], error


@given(payloads)
def test_fuzzed_payloads_get_an_answer_and_the_handler_keeps_serving(fuzz_handler, payload):
    SENT["fuzzed"] += 1
    check_answer(payload, fuzz_handler(payload))
    assert fuzz_handler(GOOD_SMALL_REQUEST)["ok"] is True




VIDEO_FORMATS = [name for name, module in FORMATS.items() if not module.NEEDS_AUDIO]  # the tiny LTX makes no sound
valid_requests = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=40).filter(str.strip),
     "outputs": st.lists(st.sampled_from(VIDEO_FORMATS), min_size=1, max_size=len(VIDEO_FORMATS), unique=True),
     "num_frames": st.integers(1, 9), "height": st.sampled_from([32, 64]), "width": st.sampled_from([32, 64]),
     "num_inference_steps": st.integers(2, 3), "seed": st.integers(0, 2**63 - 1)},
    optional={"fps": st.integers(1, 50), "negative_prompt": st.text(max_size=20),
              "guidance_scale": st.floats(0, 20, allow_subnormal=False), "image": st.just(jpeg_base64(40, 24)),
              "last_image": st.just(jpeg_base64(24, 40)),
              "gif": st.fixed_dictionaries({}, optional={"fps": st.integers(1, 50)}),
              "webm": st.fixed_dictionaries({}, optional={"fps": st.integers(1, 60),
                                                          "quality": st.sampled_from(["fast", "good"])}),
              "mp4": st.fixed_dictionaries({}, optional={"fps": st.integers(1, 60),
                                                         "quality": st.sampled_from(["fast", "good"])})})


@settings(max_examples=int(os.environ.get("FUZZ_VALID_EXAMPLES", "25")))
@given(valid_requests)
def test_valid_requests_decode_in_every_format_combination(fuzz_handler, inputs):
    SENT["valid"] += 1
    result = fuzz_handler({"inputs": inputs})
    assert result["ok"] is True, result
    TALLY["ok (valid strategy)"] += 1
    decoders = {"gif": lambda d: decode_gif(d).frames, "webm": lambda d: decode_video(d).frames,
                "mp4": lambda d: decode_video(d).frames, "zip": lambda d: decode_zip(d).frames}
    for name in inputs["outputs"]:
        data = base64.b64decode(result["outputs"][f"{name}_base64"])
        if name in ("thumbnail", "spritesheet"):  # stills: the first frame; a grid of sprites
            still = Image.open(io.BytesIO(data))
            scale = 1.0 if name == "thumbnail" else min(1.0, spritesheet.MAX_SPRITE_WIDTH / inputs["width"])
            columns, rows = (1, 1) if name == "thumbnail" else spritesheet.grid(
                len(spritesheet.sprite_indices(inputs["num_frames"])))
            assert still.size == (columns * max(1, round(inputs["width"] * scale)),
                                  rows * max(1, round(inputs["height"] * scale)))
            continue
        frames = decoders[name](data)
        assert frames.shape[0] == inputs["num_frames"]
        assert frames.shape[1:3] == (inputs["height"], inputs["width"])
