"""Every validation rule answers `ok: false` naming the field, and the handler keeps serving."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import SMALL
from video_endpoint.errors import InvalidRequest
from video_endpoint.request_schema import Limits, VideoRequest, parse_payload, read_form, typed_form_fields

# The API card's defaults: the contract clients already rely on.
CARD_DEFAULTS = {
    "image": None, "negative_prompt": "", "num_frames": 32, "fps": 12, "height": 512, "width": 512,
    "seed": None, "num_inference_steps": 30, "guidance_scale": 7.5, "outputs": ["gif"],
    "return_base64": True,
}


def test_defaults_are_the_api_cards():
    request = parse_payload({"inputs": {"prompt": "x"}}, Limits())
    assert {name: getattr(request, name) for name in CARD_DEFAULTS} == CARD_DEFAULTS
    assert VideoRequest.model_fields["prompt"].is_required()


BAD_INPUTS = [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   \n"}, "prompt"),
    ({"prompt": 123}, "prompt"),
    ({"num_frames": "32"}, "num_frames"),
    ({"num_frames": True}, "num_frames"),
    ({"num_frames": 0}, "num_frames"),
    ({"num_frames": 2.5}, "num_frames"),
    ({"num_frames": 100_000}, "num_frames"),
    ({"fps": 0}, "fps"),
    ({"fps": -12}, "fps"),
    ({"num_inference_steps": 0}, "num_inference_steps"),
    ({"num_inference_steps": 10_000}, "num_inference_steps"),
    ({"height": 100}, "height"),
    ({"height": 0}, "height"),
    ({"height": -32}, "height"),
    ({"width": 33}, "width"),
    ({"height": 4096, "width": 4096}, "height"),
    ({"guidance_scale": float("nan")}, "guidance_scale"),
    ({"guidance_scale": float("inf")}, "guidance_scale"),
    ({"guidance_scale": "7.5"}, "guidance_scale"),
    ({"seed": -1}, "seed"),
    ({"seed": "abc"}, "seed"),
    ({"outputs": ["mp3"]}, "outputs"),
    ({"outputs": []}, "outputs"),
    ({"outputs": ["gif", "gif"]}, "outputs"),
    ({"outputs": "gif"}, "outputs"),
    ({"return_base64": "yes"}, "return_base64"),
    ({"webm": {"quality": "ultra"}, "outputs": ["webm"]}, "webm.quality"),
    ({"webm": {"qualty": "best"}}, "webm.qualty"),
    ({"gif": {"fps": 0}}, "gif.fps"),
    ({"fps": 60}, "gif.fps"),  # GIF cannot play faster than 50 fps
    ({"gif": "fast"}, "gif"),
    ({"num_frame": 8}, "num_frame"),
    ({"image": "not base64 at all!"}, "image"),
    ({"image": base64.b64encode(b"just some text, not an image").decode()}, "image"),
    ({"image": ""}, "image"),
    ({"image": 42}, "image"),
    ({"prompt": "x" * 5000}, "prompt"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_INPUTS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_INPUTS)])
def test_bad_input_names_the_field_and_the_next_request_is_served(handler, fields, field):
    inputs = {"prompt": "a good prompt", **SMALL, "num_frames": 1, **fields}
    if "prompt" not in fields and fields == {}:
        inputs.pop("prompt")
    result = handler({"inputs": inputs})
    assert result["ok"] is False
    error = result["error"]
    assert error["type"] == "invalid_request"
    assert error["field"] == field, error
    assert error["message"]
    good = handler({"inputs": {"prompt": "fine", "height": 32, "width": 32, "num_frames": 1,
                               "num_inference_steps": 2}})
    assert good["ok"] is True, good


@pytest.mark.parametrize(("body", "field"), [
    ([], None), ("text", None), ({"input": {"prompt": "x"}}, "inputs"), ({"inputs": [1, 2]}, "inputs"),
    ({"inputs": {"prompt": "x"}, "parameters": "seed=1"}, "parameters"),
    ({"inputs": {"prompt": "x", "seed": 1}, "parameters": {"seed": 2}}, "seed"),
])
def test_bad_body_shapes(handler, body, field):
    result = handler(body)
    assert result["ok"] is False and result["error"]["type"] == "invalid_request"
    assert result["error"]["field"] == field


def test_unknown_key_suggests_the_closest_valid_key():
    with pytest.raises(InvalidRequest) as failure:
        parse_payload({"inputs": {"prompt": "x", "num_frame": 8}}, Limits())
    assert "did you mean 'num_frames'" in failure.value.message
    with pytest.raises(InvalidRequest) as failure:
        parse_payload({"inputs": {"prompt": "x", "webm": {"qualty": "best"}}}, Limits())
    assert "did you mean 'quality'" in failure.value.message


def test_error_never_echoes_the_input():
    huge = "A" * 10_000 + "!"
    with pytest.raises(InvalidRequest) as failure:
        parse_payload({"inputs": {"prompt": "x", "negative_prompt": 5, "seed": huge}}, Limits())
    assert huge not in str(failure.value.envelope())


def test_limits_come_from_the_environment():
    limits = Limits.from_env({"VIDEO_MAX_FRAMES": "16", "VIDEO_MAX_STEPS": "4", "VIDEO_MAX_PIXELS": "4096"})
    assert (limits.max_frames, limits.max_steps, limits.max_pixels) == (16, 4, 4096)
    for inputs, field in [({"num_frames": 17}, "num_frames"), ({"num_inference_steps": 5}, "num_inference_steps"),
                          ({"height": 64, "width": 96}, "height")]:
        with pytest.raises(InvalidRequest) as failure:
            parse_payload({"inputs": {"prompt": "x", "height": 32, "width": 32, "num_frames": 1,
                                      "num_inference_steps": 2, **inputs}}, limits)
        assert failure.value.field == field
        assert "VIDEO_MAX_" in failure.value.message
    with pytest.raises(ValueError, match="VIDEO_MAX_FRAMES"):
        Limits.from_env({"VIDEO_MAX_FRAMES": "many"})


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"video": "v", "image": "i"}, "image", "cannot be combined with image"),
    ({"video": "v", "keyframes": [{"image": "i", "frame": 1}]}, "keyframes", "cannot be combined with keyframes"),
    ({"video": "v", "extend": "e"}, "extend", "cannot be combined with extend"),
    ({"strength": 0.5}, "strength", "send it with video"),
    ({"extend": "e", "last_image": "l"}, "last_image", "takes no last_image"),
    ({"keyframes": [{"image": "i", "frame": 32}]}, "keyframes.0.frame", "below num_frames (32)"),
    ({"image": "i", "keyframes": [{"image": "k", "frame": 0}]}, "keyframes.0.frame", "already has an image"),
    ({"last_image": "l", "keyframes": [{"image": "k", "frame": 31}]}, "keyframes.0.frame", "already has an image"),
    ({"keyframes": [{"image": "k", "frame": 3}, {"image": "k", "frame": 3}]}, "keyframes.1.frame", "already"),
    ({"keyframes": [{"image": "k", "frame": 3, "strength": 1.5}]}, "keyframes.0.strength", "less than or equal"),
    ({"keyframes": [{"image": "k", "frame": i} for i in range(9)]}, "keyframes", "at most 8"),
    ({"video": "v", "strength": -0.1}, "strength", "greater than or equal"),
])
def test_conditioning_fields_that_do_not_fit_together_are_refused_by_field(fields, field, reason):
    with pytest.raises(InvalidRequest) as refused:
        parse_payload({"inputs": {"prompt": "p", **fields}}, Limits())
    assert refused.value.field == field and reason in refused.value.message, refused.value.message


def test_conditioning_defaults_keep_the_card_s_request():
    request = parse_payload({"inputs": {"prompt": "p"}}, Limits())
    assert (request.last_image, request.keyframes, request.video, request.strength, request.extend) == (
        None, [], None, None, None)


def test_the_task_spec_shapes_and_types():
    from tests.conftest import jpeg_base64

    image = jpeg_base64()
    request = parse_payload({"inputs": image, "parameters": {
        "prompt": "waves", "target_size": {"width": 96, "height": 64}, "negative_prompt": ["blur", " ", "text"],
        "num_frames": 9.0}}, Limits())
    assert (request.image, request.prompt, request.width, request.height) == (image, "waves", 96, 64)
    assert (request.negative_prompt, request.num_frames) == ("blur, text", 9)
    data_url = parse_payload({"inputs": "data:image/jpeg;base64," + image, "parameters": {"prompt": "p"}}, Limits())
    assert data_url.image is not None and data_url.prompt == "p"
    # a prompt stays a prompt, however long, and strictness stays where the spec is not involved
    assert parse_payload({"inputs": "Quick brown fox " * 20}, Limits()).image is None
    cases = [
        ({"inputs": image}, "parameters.prompt", "put the prompt in parameters.prompt"),
        ({"inputs": image, "parameters": {"prompt": "p", "num_frames": 9.5}}, "num_frames", "valid integer"),
        ({"inputs": "p", "parameters": {"target_size": {"width": 96, "depth": 3}}}, "parameters.target_size",
         "target_size must be"),
        ({"inputs": "p", "parameters": {"target_size": {"width": 96}, "width": 64}}, "parameters.target_size",
         "give it once"),
        ({"inputs": "p", "parameters": {"negative_prompt": ["ok", 3]}}, "negative_prompt", "list of at most 64"),
        ({"inputs": {"prompt": "p", "num_frames": 9.0}}, "num_frames", "valid integer"),
        ({"inputs": {"prompt": "p", "negative_prompt": ["a"]}}, "negative_prompt", "valid string"),
    ]
    for body, field, reason in cases:
        with pytest.raises(InvalidRequest) as refused:
            parse_payload(body, Limits())
        assert refused.value.field == field and reason in refused.value.message, (body, refused.value.message)


def test_a_form_in_bracket_notation_reads_as_the_json_request():
    """The OpenAI SDK's form for extra fields (measured: openai 3.63's `_serialize_multipartform`)."""
    pairs = [("loras[][name]", "a"), ("loras[][scale]", "0.5"), ("loras[][name]", "b"), ("outputs[]", "mp4"),
             ("outputs[]", "gif"), ("seed", "3"), ("return_base64", "true"), ("gif[fps]", "8"),
             ("keyframes[][image]", "x"), ("keyframes[][frame]", "3"), ("guidance_scale", "4")]
    form = read_form(pairs)
    assert form == {"loras": [{"name": "a", "scale": "0.5"}, {"name": "b"}], "outputs": ["mp4", "gif"], "seed": "3",
                    "return_base64": "true", "gif": {"fps": "8"}, "keyframes": [{"image": "x", "frame": "3"}],
                    "guidance_scale": "4"}
    typed = typed_form_fields(form)
    assert typed["loras"] == [{"name": "a", "scale": 0.5}, {"name": "b", "scale": 1.0}]
    assert (typed["seed"], typed["return_base64"], typed["gif"]["fps"], typed["guidance_scale"]) == (3, True, 8, 4.0)
    assert typed["keyframes"][0]["frame"] == 3
    assert parse_payload({"inputs": {"prompt": "p", **typed, "outputs": ["gif"]}}, Limits()).seed == 3


@pytest.mark.parametrize(("pairs", "field"), [
    ([("num_frames", "2.5")], "num_frames"),
    ([("loras[][name]", "a"), ("loras[][scale]", "big")], "loras.0.scale"),
    ([("return_base64", "maybe")], "return_base64"),
    ([("seed", "1"), ("seed", "2")], "seed"),
    ([("seed", "1"), ("seed[]", "2")], "seed??"),
    ([("a[b", "1")], "a?b"),
    ([("a[b][c][d][e]", "1")], "a?b??c??d??e?"),
])
def test_a_form_value_that_does_not_read_as_its_type_is_refused_naming_it(pairs, field):
    with pytest.raises(InvalidRequest) as refused:
        typed_form_fields(read_form(pairs))
    assert refused.value.field == field


def test_return_extended_needs_extend():
    with pytest.raises(InvalidRequest) as refused:
        parse_payload({"inputs": {"prompt": "p", "return_extended": True}}, Limits())
    assert refused.value.field == "return_extended"


def test_the_schema_reads_every_body_shape_the_server_takes():
    """`POST /jobs`'s body and the raw-file answer asked by `Accept` are read here, not by the server."""
    from video_endpoint.request_schema import raw_file_body, read_job_submission

    job = read_job_submission({"inputs": "a prompt", "parameters": {"num_frames": 9}}, "key-1")
    assert (job.kind, job.idempotency_key) == ("submit", "key-1")
    assert job.data == {"inputs": {"prompt": "a prompt"}, "parameters": {"num_frames": 9}}
    for body in ([], {"inputs": 3}, {"prompt": "x"}):
        with pytest.raises(InvalidRequest) as refused:
            read_job_submission(body)
        assert refused.value.field == "inputs"
    body = {"inputs": {"prompt": "x"}}
    assert raw_file_body(body, "application/json") == body
    assert raw_file_body(body, "video/mp4;q=0.9, */*")["inputs"] == {"prompt": "x", "return_base64": False,
                                                                   "outputs": ["mp4"]}
    assert raw_file_body(body, "video/mp4;q=0") == body  # not wanted
    assert raw_file_body({"inputs": "x"}, "")["parameters"] == {"return_base64": False}  # the task shape: the file
    with pytest.raises(InvalidRequest) as refused:
        raw_file_body({"inputs": {"prompt": "x", "outputs": ["gif"]}}, "video/mp4")
    assert refused.value.field == "outputs"
