"""Outputs uploaded to presigned PUT URLs instead of answered: against a loopback receiver that
keeps what it is sent, decoded here."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import time

import pytest

from tests.conftest import SMALL
from tests.media import decode_gif, decode_video
from video_endpoint.request_schema import Limits

REQUEST = {"prompt": "waves", **SMALL, "num_frames": 9, "seed": 2, "outputs": ["mp4", "gif"]}


class Receiver:
    """A store that takes PUTs on 127.0.0.1: keeps each body by path, answers `statuses` in turn
    (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(("PUT", self.path, dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}?X-Amz-Signature=secret&X-Amz-Expires=600"


@pytest.fixture(scope="module")
def receiver():
    store = Receiver()
    yield store
    store.server.shutdown()


@pytest.fixture
def uploading(handler, receiver, monkeypatch):
    monkeypatch.setattr(handler, "upload_hosts", (receiver.host,))
    receiver.received.clear()
    receiver.statuses.clear()
    return handler


def test_an_uploaded_output_is_where_the_answer_says_and_only_there(uploading, receiver):
    answer = uploading({"inputs": {**REQUEST, "upload": {"mp4": receiver.url("/bucket/clip.mp4")}}})
    assert answer["ok"] is True, answer
    [(method, path, headers, body)] = receiver.received
    assert (method, path) == ("PUT", "/bucket/clip.mp4?X-Amz-Signature=secret&X-Amz-Expires=600")
    assert headers["Content-Type"] == "video/mp4" and int(headers["Content-Length"]) == len(body)
    assert decode_video(body).frames.shape == (9, 64, 96, 3)
    assert answer["outputs"]["mp4_upload"] == {"url": f"http://{receiver.host}/bucket/clip.mp4", "bytes": len(body),
                                               "sha256": hashlib.sha256(body).hexdigest()}
    assert "mp4_base64" not in answer["outputs"] and "secret" not in json.dumps(answer)
    assert decode_gif(base64.b64decode(answer["outputs"]["gif_base64"])).frames.shape[0] == 9
    assert "upload" in answer["diagnostics"]["timing_ms"]
    only_upload = uploading({"inputs": {**REQUEST, "outputs": ["mp4"], "upload": {"mp4": receiver.url("/a.mp4")}}})
    assert len(json.dumps(only_upload)) < 10_000  # the JSON tax, gone


def test_a_store_that_fails_for_a_moment_is_tried_again(uploading, receiver):
    receiver.statuses[:] = [503, 500]
    answer = uploading({"inputs": {**REQUEST, "upload": {"mp4": receiver.url("/retry.mp4")}}})
    assert answer["ok"] is True and len(receiver.received) == 3
    assert answer["outputs"]["mp4_upload"]["bytes"] == len(receiver.received[-1][3])


def test_a_refused_upload_fails_the_request_by_field_and_reports_nothing(uploading, receiver):
    receiver.statuses[:] = [403]
    answer = uploading({"inputs": {**REQUEST, "upload": {"gif": receiver.url("/g.gif"),
                                                         "mp4": receiver.url("/m.mp4")}}})
    assert answer["ok"] is False and "outputs" not in answer
    assert (answer["error"]["type"], answer["error"]["field"]) == ("upload_failed", "upload.gif")
    assert "HTTP 403" in answer["error"]["message"] and "secret" not in json.dumps(answer)
    assert len(receiver.received) == 1  # a refusal is not tried again, and the rest is not sent


@pytest.mark.parametrize(("upload", "field", "reason"), [
    ({"mp4": "http://127.0.0.2:9/x.mp4"}, "upload.mp4", "VIDEO_UPLOAD_HOSTS"),
    ({"mp4": "http://user:pw@HOST/x.mp4"}, "upload.mp4", "user name or password"),
    ({"mp4": "ftp://HOST/x.mp4"}, "upload.mp4", "http(s) URL"),
    ({"webm": "http://HOST/x.webm"}, "upload.webm", "not in outputs"),
    ({"mov": "http://HOST/x.mov"}, "upload.mov", "Input should be"),
])
def test_upload_targets_are_checked_before_anything_is_generated(uploading, receiver, upload, field, reason):
    upload = {name: url.replace("HOST", receiver.host) for name, url in upload.items()}
    started = time.perf_counter()
    answer = uploading({"inputs": {**REQUEST, "upload": upload}})
    assert answer["ok"] is False and answer["error"]["field"] == field and reason in answer["error"]["message"]
    assert time.perf_counter() - started < 0.5 and receiver.received == []


def test_uploads_are_off_unless_the_operator_lists_hosts(handler, receiver):
    assert handler.upload_hosts == ()
    answer = handler({"inputs": {**REQUEST, "upload": {"mp4": receiver.url("/x.mp4")}}})
    assert (answer["ok"], answer["error"]["field"]) == (False, "upload")


def test_a_job_uploads_and_its_answer_stays_small(uploading, receiver):
    from video_endpoint.jobs import JobQueue, JobSettings

    uploading.jobs = JobQueue(run=uploading.jobs.run, config=JobSettings())
    submitted = uploading({"inputs": {**REQUEST, "outputs": ["mp4"], "upload": {"mp4": receiver.url("/job.mp4")},
                                      "async": True}})
    deadline = time.monotonic() + 60
    while (answer := uploading({"inputs": {"job_id": submitted["job"]["id"]}}))["job"]["status"] != "succeeded":
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)
    assert answer["outputs"]["mp4_upload"]["bytes"] == len(receiver.received[-1][3])
    assert len(json.dumps(answer)) < 10_000


def test_an_upload_url_is_at_most_2000_characters():
    from video_endpoint.errors import InvalidRequest
    from video_endpoint.request_schema import parse_payload

    assert parse_payload({"inputs": {"prompt": "p", "upload": {"gif": "http://x/" + "a" * 1991}}}, Limits()).upload
    with pytest.raises(InvalidRequest) as refused:
        parse_payload({"inputs": {"prompt": "p", "upload": {"gif": "http://x/" + "a" * 1992}}}, Limits())
    assert refused.value.field == "upload.gif"
