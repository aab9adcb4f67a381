"""The stages of one request, each on its own, on the tiny LTX model: decode, plan, generate,
encode, and how the model's own errors become the endpoint's."""

from __future__ import annotations

import base64
from dataclasses import replace

import numpy as np
import pytest

from encoders import cores
from pipelines import errors as model_errors
from tests.conftest import SMALL, jpeg_base64
from tests.media import decode_gif, decode_video, decode_zip, zip_members
from video_endpoint import stages
from video_endpoint.errors import InvalidRequest, OutOfMemory, Unsupported

REQUEST = {"prompt": "stages", **SMALL, "num_frames": 10, "seed": 3, "outputs": ["gif", "zip"]}


def decoded(handler, **change):
    return stages.decode({"inputs": {**REQUEST, **change}}, handler.limits)


def test_decode_parses_once_and_decodes_the_image_to_the_video_size(handler):
    plain = decoded(handler)
    assert plain.image is None and set(plain.timer.timing_ms) == {"parse"}
    with_image = decoded(handler, image=jpeg_base64(40, 24))
    assert with_image.image.size == (96, 64) and set(with_image.timer.timing_ms) == {"parse", "image_decode"}
    with pytest.raises(InvalidRequest) as refused:
        decoded(handler, height=100)
    assert refused.value.field == "height"


def test_plan_rounds_frames_up_for_the_family_and_says_so(handler):
    ten = decoded(handler)
    job, notes = stages.plan(ten, handler.model)
    assert (job.num_frames, job.seed, job.mode) == (17, 3, "t2v")  # LTX: 8k+1 frames
    assert notes == ["generated 17 frames (ltx-video needs 8k+1 frames) and returned the first 10"]
    nine = decoded(handler, num_frames=9, seed=None)
    job, notes = stages.plan(nine, handler.model)
    assert job.num_frames == 9 and notes == [] and 0 <= job.seed < 2**stages.SEED_BITS
    with pytest.raises(InvalidRequest) as refused:
        unknown = decoded(handler, loras=[{"name": "../etc/passwd"}])
        stages.plan(unknown, handler.model)
    assert refused.value.field == "loras.0.name"
    with pytest.raises(Unsupported) as refused:
        wav = decoded(handler, outputs=["wav"])
        stages.plan(wav, handler.model)  # LTX-Video makes no sound
    assert refused.value.field == "outputs.wav"


def test_generate_keeps_the_asked_frames_and_encode_writes_each_format_from_them(handler):
    request = decoded(handler)
    job, _ = stages.plan(request, handler.model)
    steps = []
    generated = stages.generate(handler.model, job, request.timer, lambda done, total: steps.append((done, total)))
    assert generated.frames.shape == (10, 64, 96, 3) and generated.generated_frames == 17
    assert steps == [(1, 2), (2, 2)]  # after each denoising step
    outputs, info, _ = stages.encode(generated, request.request, job, request.timer)
    gif = decode_gif(base64.b64decode(outputs["gif_base64"]))
    frames = decode_zip(base64.b64decode(outputs["zip_base64"])).frames
    np.testing.assert_array_equal(frames, generated.frames)
    assert gif.frames.shape == frames.shape and info["gif"]["mime"] == "image/gif"
    assert {"encode.gif", "encode.zip", "base64"} <= set(request.timer.timing_ms)
    for threads in (1, 3):  # the encode budget changes the work's split, never the files
        again, _, _ = stages.encode(generated, request.request, job, request.timer, budget=cores.CoreBudget(threads))
        assert again["gif_base64"] == outputs["gif_base64"]
        archives = [zip_members(base64.b64decode(answer["zip_base64"])) for answer in (again, outputs)]
        assert archives[0] == archives[1]


@pytest.mark.parametrize(("raised", "answered"), [
    (model_errors.Refused("this model needs more", field="height"), InvalidRequest),
    (model_errors.OutOfMemory("out of GPU memory generating"), OutOfMemory),
])
def test_the_model_s_errors_become_the_endpoint_s(raised, answered):
    with pytest.raises(answered) as caught, stages.model_errors_answered():
        raise raised
    assert caught.value.message == raised.message
    assert caught.value.field == getattr(raised, "field", None)


@pytest.mark.parametrize("model_id", ["tiny-hunyuan", "tiny-hunyuan15"])
def test_a_family_without_conditioning_answers_unsupported_by_field(family_handlers, model_id):
    from tests.media import synthetic_clip, video_base64

    handler = family_handlers(model_id)
    clip = video_base64(synthetic_clip(20, 64, 96), 12)
    for field, value in (("last_image", jpeg_base64()), ("keyframes", [{"image": jpeg_base64(), "frame": 2}]),
                         ("video", clip), ("extend", clip)):
        with pytest.raises(Unsupported) as refused:
            stages.plan(decoded(handler, num_frames=9, **{field: value}), handler.model)
        assert refused.value.field == field and "cannot use" in refused.value.message


ALL_FORMATS = {"prompt": "stream", **SMALL, "num_frames": 10, "seed": 5, "outputs": ["gif", "mp4", "webm", "zip"]}


def streaming_on(handler, monkeypatch, on: bool = True) -> None:
    monkeypatch.setattr(handler.model, "speed", replace(handler.model.speed, stream_encode=on))


def answer_files(result: dict) -> dict[str, bytes]:
    return {name: base64.b64decode(result["outputs"][f"{name}_base64"]) for name in ALL_FORMATS["outputs"]}


def test_formats_that_stream_encode_while_wan_decodes_and_answer_the_same(family_handlers, monkeypatch):
    """With VIDEO_STREAM_ENCODE on, WebM, MP4 and ZIP take Wan's frames as each latent frame is
    decoded; the GIF waits for the finished clip. Every file decodes to what the unstreamed answer's does."""
    handler = family_handlers("tiny-wan")
    streaming_on(handler, monkeypatch, on=False)
    plain = handler({"inputs": ALL_FORMATS})
    streaming_on(handler, monkeypatch)
    streamed = handler({"inputs": ALL_FORMATS})
    assert plain["ok"] and streamed["ok"], streamed
    outputs = streamed["diagnostics"]["outputs"]
    assert [name for name in outputs if outputs[name].get("streamed")] == ["mp4", "webm", "zip"]
    assert not any("streamed" in info for info in plain["diagnostics"]["outputs"].values())
    files, before = answer_files(streamed), answer_files(plain)
    assert files["gif"] == before["gif"] and files["mp4"] == before["mp4"]
    assert zip_members(files["zip"]) == zip_members(before["zip"])
    np.testing.assert_array_equal(decode_video(files["webm"]).frames, decode_video(before["webm"]).frames)
    assert decode_zip(files["zip"]).frames.shape == (10, 64, 96, 3)


def test_frames_that_were_not_all_streamed_are_encoded_from_the_finished_clip(handler, monkeypatch):
    """The encoders that started on frames the model then did not confirm (another decode pattern,
    an out-of-memory retry in tiles) are stopped, and each format encodes the generated frames."""
    streaming_on(handler, monkeypatch)
    request = decoded(handler, outputs=["mp4", "zip"])
    job, _ = stages.plan(request, handler.model)
    generated = stages.generate(handler.model, job, request.timer, None)
    streaming = stages.Streaming.start(handler.model, request.request, job, handler.encode_cores)
    assert streaming is not None
    streaming.open()[:4] = 255 - generated.frames[:4]  # frames that were streamed, then void
    streaming.arrived(4)
    outputs, info, _ = stages.encode(replace(generated, streamed=False), request.request, job, request.timer,
                                  streaming=streaming)
    np.testing.assert_array_equal(decode_zip(base64.b64decode(outputs["zip_base64"])).frames, generated.frames)
    assert decode_video(base64.b64decode(outputs["mp4_base64"])).frames.shape == generated.frames.shape
    assert not any("streamed" in entry for entry in info.values())


def test_a_generation_that_fails_while_decoding_stops_the_streaming_encoders(family_handlers, monkeypatch):
    """The decoder fails after its first chunk: the answer is an error, no ffmpeg is left running, and
    the next request is served."""
    from tests.encoders.test_streaming import ffmpeg_children

    handler = family_handlers("tiny-wan")
    streaming_on(handler, monkeypatch)
    decoder, calls = handler.model.pipelines.t2v.vae.decoder, []

    def fail_second(module, args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the decoder failed")

    handle = decoder.register_forward_pre_hook(fail_second)
    try:
        failed = handler({"inputs": ALL_FORMATS})
    finally:
        handle.remove()
    assert failed["ok"] is False and failed["error"]["type"] == "internal"
    assert ffmpeg_children() == []
    served = handler({"inputs": ALL_FORMATS})
    assert served["ok"] and served["diagnostics"]["outputs"]["mp4"]["streamed"]


def test_a_request_waiting_for_the_model_holds_no_encoder_frames_or_cores(family_handlers, monkeypatch):
    """Streaming encoders start when the decoder makes its first frames: a request queued behind
    another (the model busy) has no ffmpeg running and no cores leased; once it runs, it streams."""
    import threading
    import time

    from tests.encoders.test_streaming import ffmpeg_children

    handler = family_handlers("tiny-wan")
    streaming_on(handler, monkeypatch)
    monkeypatch.setattr(handler, "encode_cores", cores.CoreBudget(2))
    answers: list[dict] = []
    with handler.model._lock:  # another request is generating
        waiting = threading.Thread(target=lambda: answers.append(handler({"inputs": ALL_FORMATS})))
        waiting.start()
        time.sleep(1.0)  # "nothing starts while the model is busy" needs time to pass
        assert waiting.is_alive() and ffmpeg_children() == [] and handler.encode_cores.in_use == 0
    waiting.join(timeout=120)
    assert answers[0]["ok"] and answers[0]["diagnostics"]["outputs"]["mp4"]["streamed"]
    assert handler.encode_cores.in_use == 0 and ffmpeg_children() == []


@pytest.mark.parametrize("streaming", [False, True])
def test_answers_encoding_at_once_share_the_cores(family_handlers, monkeypatch, streaming):
    """While another answer's encoders hold the budget, a request's formats get one core each (the
    least there is), not one per core each; alone, they share all four. The lease ends with the request."""
    handler = family_handlers("tiny-wan")
    streaming_on(handler, monkeypatch, on=streaming)
    monkeypatch.setattr(handler, "encode_cores", cores.CoreBudget(4))
    alone = handler({"inputs": ALL_FORMATS})
    with handler.encode_cores.lease() as other:  # what another answer's encoders hold while they run
        assert other.threads == 4
        crowded = handler({"inputs": ALL_FORMATS})
        assert handler.encode_cores.in_use == 4
    assert alone["ok"] and crowded["ok"], crowded
    threads = {answer: {name: info["threads"] for name, info in result["diagnostics"]["outputs"].items()}
               for answer, result in (("alone", alone), ("crowded", crowded))}
    assert threads["crowded"] == dict.fromkeys(ALL_FORMATS["outputs"], 1)
    assert sum(threads["alone"].values()) >= 4 and max(threads["alone"].values()) > 1
    files, before = answer_files(crowded), answer_files(alone)
    assert files["gif"] == before["gif"] and zip_members(files["zip"]) == zip_members(before["zip"])
    for name in ("mp4", "webm"):  # other thread counts: other bytes, the same frames
        assert decode_video(files[name]).frames.shape == decode_video(before[name]).frames.shape == (10, 64, 96, 3)
    assert handler.encode_cores.in_use == 0
