"""OpenAI's Videos API on the real local server (a subprocess on the tiny random-weight LTX model),
driven by the real `openai` SDK as its users call it; what comes back is decoded (PyAV, Pillow)."""

from __future__ import annotations

import base64
import io
import re
import threading
import time

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from tests.conftest import jpeg_base64, serving
from tests.media import decode_video, psnr

TOKEN = "openai-token-0123456789"
SMALL = {"size": "96x64", "seconds": "1", "extra_body": {"num_inference_steps": 2}}
ENV = {"VIDEO_API_TOKEN": TOKEN, "VIDEO_MAX_STEPS": "2000", "VIDEO_MAX_QUEUED": "1", "VIDEO_JOB_TTL_S": "600"}


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("openai") / "server.log"
    with serving(tiny_model_dir, log, ENV) as (url, _):
        yield url, log


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key=TOKEN)


def frames_of(client, video_id: str, variant: str = "video") -> np.ndarray:
    return decode_video(client.videos.download_content(video_id, variant=variant).read()).frames


def png_bytes(width: int = 96, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(base64.b64decode(jpeg_base64(width, height)))).save(buffer, format="PNG")
    return buffer.getvalue()


def test_models_lists_the_served_model(client):
    models = client.models.list().data
    assert [model.id for model in models] == ["tiny-ltx"] and models[0].object == "model"
    assert client.models.retrieve("tiny-ltx").id == "tiny-ltx"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("sora-2")


def test_create_and_poll_then_download_the_mp4_it_describes(client, server):
    video = client.videos.create_and_poll(prompt="a lighthouse", size="96x64", seconds="1", model="tiny-ltx",
                                          extra_body={"num_inference_steps": 2, "seed": 7})
    assert video.status == "completed" and video.progress == 100 and video.error is None
    assert video.id.startswith("video_") and video.model == "tiny-ltx" and video.prompt == "a lighthouse"
    assert (video.seconds, video.size) == ("1", "96x64")
    extra = video.model_extra
    assert (extra["seed"], extra["num_frames"], extra["fps"], extra["num_inference_steps"]) == (7, 12, 12, 2)
    assert video.created_at <= video.completed_at <= time.time() + 1
    assert video.expires_at == video.completed_at + 600  # VIDEO_JOB_TTL_S
    mp4 = decode_video(client.videos.download_content(video.id).read())
    assert mp4.codec == "h264" and mp4.frames.shape == (12, 64, 96, 3) and mp4.fps == 12
    # the Video object's parameters reproduce it through the endpoint's own API
    again = httpx.post(server[0], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60, json={"inputs": {
        "prompt": "a lighthouse", "width": 96, "height": 64, "num_frames": extra["num_frames"], "fps": extra["fps"],
        "num_inference_steps": 2, "seed": 7, "outputs": ["mp4"]}}).json()
    np.testing.assert_array_equal(decode_video(base64.b64decode(again["outputs"]["mp4_base64"])).frames, mp4.frames)


def test_thumbnail_spritesheet_and_byte_ranges(client, server):
    video = client.videos.create_and_poll(prompt="waves", **SMALL)
    data = client.videos.download_content(video.id).read()
    frames = decode_video(data).frames
    thumbnail = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="thumbnail").read()))
    assert thumbnail.format == "WEBP" and thumbnail.size == (96, 64)
    assert psnr(np.asarray(thumbnail.convert("RGB"))[None], frames[:1]) > 20  # the first frame
    sheet = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sheet.format == "JPEG" and sheet.size == (4 * 96, 3 * 64)  # 12 frames, 4 x 3
    tile = np.asarray(sheet.convert("RGB"))[64:128, 96:192]  # the 6th sprite: frame 5
    assert psnr(tile[None], frames[5:6]) > 20
    url = f"{server[0]}/v1/videos/{video.id}/content"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    part = httpx.get(url, headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}" and part.headers["accept-ranges"] == "bytes"
    tail = httpx.get(url, headers={**headers, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    past = httpx.get(url, headers={**headers, "Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
    assert httpx.get(url, headers=headers).content == data
    with pytest.raises(openai.BadRequestError) as bad:
        client.videos.download_content(video.id, variant="poster")
    assert bad.value.body["param"] == "variant"


def test_extra_fields_in_the_sdks_form_are_typed_by_the_schema(client):
    video = client.videos.create_and_poll(prompt="a kite", size="96x64", seconds="1", extra_body={
        "num_inference_steps": 3, "guidance_scale": 3.5, "negative_prompt": "blur", "outputs": ["gif"],
        "gif": {"fps": 6}, "seed": 11})
    extra = video.model_extra
    assert (extra["num_inference_steps"], extra["guidance_scale"], extra["seed"]) == (3, 3.5, 11)
    gif = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="gif").read()))
    assert gif.n_frames == 12 and gif.size == (96, 64) and gif.info["duration"] in (160, 170)  # 6 fps
    with pytest.raises(openai.BadRequestError) as fractional:
        client.videos.create(prompt="x", extra_body={"num_inference_steps": "2.5"})
    assert fractional.value.body["param"] == "num_inference_steps"
    assert fractional.value.body["code"] == "invalid_request" and fractional.value.status_code == 400
    # nested values in bracket notation (loras[][name], loras[][scale]) arrive as a list of objects
    with pytest.raises(openai.BadRequestError) as lora:
        client.videos.create(prompt="x", extra_body={"loras": [{"name": "style", "scale": 0.5}]})
    assert lora.value.body["param"] == "loras.0.name" and "has none" in lora.value.body["message"]
    with pytest.raises(openai.BadRequestError) as both:
        client.videos.create(prompt="x", seconds="1", extra_body={"num_frames": 9})
    assert both.value.body["param"] == "seconds"
    with pytest.raises(openai.BadRequestError) as size:
        client.videos.create(prompt="x", size="wide")
    assert size.value.body["param"] == "size"
    with pytest.raises(openai.BadRequestError) as model:
        client.videos.create(prompt="x", model="sora-2")
    assert model.value.body["param"] == "model"


def test_defaults_and_seconds_rounded_to_frames(client):
    default = client.videos.create_and_poll(prompt="defaults", size="96x64", extra_body={"num_inference_steps": 2})
    assert default.model_extra["num_frames"] == 32 and default.model_extra["fps"] == 12  # the API card's
    assert default.seconds == "2.67"
    odd = client.videos.create_and_poll(prompt="odd", size="96x64", seconds="0.3",
                                        extra_body={"num_inference_steps": 2, "fps": 10})
    assert odd.model_extra["num_frames"] == 3 and odd.seconds == "0.3"
    assert len(frames_of(client, odd.id)) == 3


def test_image_to_video_from_an_uploaded_file_and_an_image_url(client, server):
    uploaded = client.videos.create_and_poll(prompt="move", input_reference=("still.png", png_bytes(), "image/png"),
                                             **SMALL)
    assert uploaded.status == "completed"
    job = httpx.get(f"{server[0]}/jobs/{uploaded.id.removeprefix('video_')}",
                    headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert job["diagnostics"]["mode"] == "i2v"
    data_url = "data:image/jpeg;base64," + jpeg_base64(96, 64)
    created = httpx.post(f"{server[0]}/v1/videos", headers={"Authorization": f"Bearer {TOKEN}"}, json={
        "prompt": "move", "size": "96x64", "seconds": "1", "input_reference": {"image_url": data_url},
        "num_inference_steps": 2})
    assert created.status_code == 200, created.text
    video = client.videos.poll(created.json()["id"])
    assert video.status == "completed"
    job = httpx.get(f"{server[0]}/jobs/{video.id.removeprefix('video_')}",
                    headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert job["diagnostics"]["mode"] == "i2v"


def test_progress_from_the_steps_then_delete_frees_the_model_at_once(client, server):
    long = client.videos.create(prompt="a long one", extra_body={"num_inference_steps": 1500}, **{
        k: v for k, v in SMALL.items() if k != "extra_body"})
    seen = set()
    deadline = time.monotonic() + 120
    while len({p for p in seen if 0 < p < 100}) < 3:
        answer = client.videos.with_raw_response.retrieve(long.id)
        video = answer.parse()
        assert video.status in ("queued", "in_progress") and time.monotonic() < deadline
        if video.status == "in_progress":
            seen.add(video.progress)
            assert 100 <= int(answer.headers["openai-poll-after-ms"]) <= 5000
        time.sleep(0.2)
    deleted = client.videos.delete(long.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (long.id, True, "video.deleted")
    started = time.monotonic()
    small = client.videos.create_and_poll(prompt="next", **SMALL)
    assert small.status == "completed" and time.monotonic() - started < 30  # not behind 1500 steps
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(long.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(long.id)
    log = server[1].read_text()
    stopped = re.search(rf"job {long.id.removeprefix('video_')}: step (\d+)/1500", log)
    assert stopped and int(stopped[1]) < 1500


def test_list_newest_first_in_pages(client):
    ids = [client.videos.create_and_poll(prompt=f"list {n}", **SMALL).id for n in range(3)]
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == ids[::-1][:2] and first.has_more is True
    second = client.videos.list(limit=2, after=first.data[-1].id)
    assert second.data[0].id == ids[0]
    oldest_first = [v.id for v in client.videos.list(order="asc", limit=100).data]
    assert oldest_first.index(ids[0]) < oldest_first.index(ids[1]) < oldest_first.index(ids[2])
    walked = [v.id for v in client.videos.list(limit=1)]  # the SDK follows the pages itself
    assert walked[:3] == ids[::-1] and len(walked) == len(oldest_first)


def test_remix_edit_and_extend(client):
    source = client.videos.create_and_poll(prompt="a red ball", **SMALL)
    remix = client.videos.poll(client.videos.remix(source.id, prompt="a blue ball").id)
    assert remix.status == "completed" and remix.prompt == "a blue ball" and remix.remixed_from_video_id == source.id
    assert (remix.model_extra["seed"], remix.size, remix.seconds) == (source.model_extra["seed"], "96x64", "1")
    assert not np.array_equal(frames_of(client, remix.id), frames_of(client, source.id))

    # openai 3.x sends `video` as a file part only (a dict is refused before sending): a finished video's id
    # goes as JSON through the same client
    edited = client.videos.poll(client.post("/videos/edits", cast_to=openai.types.Video, body={
        "prompt": "in snow", "video": {"id": source.id}, "num_inference_steps": 2, "strength": 0.5}).id)
    assert edited.status == "completed" and (edited.size, edited.seconds) == ("96x64", "1")
    assert frames_of(client, edited.id).shape == (12, 64, 96, 3)
    shorter = client.videos.poll(client.post("/videos/edits", cast_to=openai.types.Video, body={
        "prompt": "in rain", "video": {"id": source.id}, "seconds": "0.5", "num_inference_steps": 2}).id)
    assert shorter.status == "completed" and frames_of(client, shorter.id).shape == (6, 64, 96, 3)
    mp4 = client.videos.download_content(source.id).read()
    uploaded = client.videos.poll(client.videos.edit(prompt="at night", video=("clip.mp4", mp4, "video/mp4"),
                                                     extra_body={"size": "96x64", "seconds": "0.5",
                                                                 "num_inference_steps": 2}).id)
    assert uploaded.status == "completed", uploaded.error
    assert frames_of(client, uploaded.id).shape == (6, 64, 96, 3)

    extended = client.videos.poll(client.post("/videos/extensions", cast_to=openai.types.Video, body={
        "prompt": "it rolls on", "seconds": "1", "video": {"id": source.id}, "num_inference_steps": 2}).id)
    assert extended.status == "completed" and extended.seconds == "2"  # the whole video
    whole = frames_of(client, extended.id)
    assert whole.shape == (24, 64, 96, 3)
    assert psnr(whole[:12], frames_of(client, source.id)) > 30  # the source's frames first, re-encoded


def test_errors_in_openais_shape_with_the_sdks_exceptions(client, server):
    with pytest.raises(openai.AuthenticationError) as wrong:
        openai.OpenAI(base_url=f"{server[0]}/v1", api_key="wrong").videos.list()
    assert wrong.value.body["param"] == "authorization"
    with pytest.raises(openai.NotFoundError) as missing:
        client.videos.retrieve("video_nothing")
    assert missing.value.body["param"] == "video_id" and missing.value.body["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError) as characters:
        client.videos.create_character(name="hero", video=("c.mp4", b"0", "video/mp4"))
    assert "not served" in characters.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.videos.get_character("char_1")
    no_prompt = httpx.post(f"{server[0]}/v1/videos", headers={"Authorization": f"Bearer {TOKEN}"},
                           files={"size": (None, "96x64")})
    assert no_prompt.status_code == 400 and no_prompt.json() == {"error": {
        "message": "prompt is required", "type": "invalid_request_error", "param": "prompt", "code": "invalid_request"}}


def test_a_full_queue_answers_429_which_the_sdk_retries(client, server):
    """VIDEO_MAX_QUEUED is 1: one running, one waiting, the third is `busy` (429, Retry-After)."""
    busy = client.videos.create(prompt="busy", extra_body={"num_inference_steps": 1500}, size="96x64", seconds="1")
    waiting = client.videos.create(prompt="waits", **SMALL)
    no_retries = client.with_options(max_retries=0)
    with pytest.raises(openai.RateLimitError) as limited:
        no_retries.videos.create(prompt="one too many", **SMALL)
    assert limited.value.status_code == 429 and limited.value.response.headers["retry-after"] == "5"
    assert limited.value.body["code"] == "busy"
    threading.Timer(1.0, client.videos.delete, args=(waiting.id,)).start()  # room before the SDK retries
    retried = client.with_options(max_retries=2).videos.create(prompt="retried", **SMALL)
    assert retried.status == "queued"
    client.videos.delete(busy.id)
    assert client.videos.poll(retried.id).status == "completed"
    assert server[1].read_text().count('"POST /v1/videos HTTP/1.1" 429') >= 2


def test_hostile_queries_headers_and_forms_get_a_bounded_answer_and_the_next_request_is_served(client, server):
    video = client.videos.create_and_poll(prompt="target", **SMALL)
    url, headers = server[0], {"Authorization": f"Bearer {TOKEN}"}
    content = f"{url}/v1/videos/{video.id}/content"
    for range_header in ("bytes=0-" + "9" * 5000, "bytes=" + "1" * 30 + "-", "bytes=0-1,5-9", "pages=1-2", "bytes=-"):
        answer = httpx.get(content, headers={**headers, "Range": range_header})
        assert answer.status_code == 200 and len(answer.content) > 1000, range_header  # the whole file
    for query in ("limit=²", "limit=0", "limit=101", "limit=" + "9" * 5000, "order=sideways"):
        answer = httpx.get(f"{url}/v1/videos?{query}", headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["param"] in ("limit", "order"), query
    assert httpx.get(f"{url}/v1/videos?after=video_gone", headers=headers).status_code == 404
    for path in ("/v1/models", "/health", f"/v1/videos/{video.id}"):  # HEAD is answered as GET, without a body
        head = httpx.head(f"{url}{path}", headers=headers)
        assert head.status_code == 200 and head.content == b"", path
    forms = [
        {f"f{n}": (None, "x") for n in range(250)},  # more parts than a request has fields
        {"prompt": (None, "x"), "loras[][name][deeper][still][more]": (None, "a")},
        {"prompt": (None, "x"), "seed": (None, "1"), "seed[]": (None, "2")},
        {"prompt": (None, "x"), "async": (None, "true")},
        {"prompt": (None, "x"), "other_file": ("a.bin", b"\0" * 10, "application/octet-stream")},
        {"prompt": (None, "x"), "input_reference": ("a.png", b"not an image", "image/png"), "size": (None, "96x64")},
    ]
    for form in forms:
        answer = httpx.post(f"{url}/v1/videos", headers=headers, files=form)
        assert answer.status_code == 400 and len(answer.content) < 4096, answer.text
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    broken = httpx.post(f"{url}/v1/videos", headers={**headers, "Content-Type": "multipart/form-data; boundary=x"},
                        content=b"--x\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nunterminated")
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_request"
    wrong_type = httpx.post(f"{url}/v1/videos", headers={**headers, "Content-Type": "text/plain"}, content=b"hi")
    assert wrong_type.status_code == 415
    assert client.videos.create_and_poll(prompt="still served", **SMALL).status == "completed"
