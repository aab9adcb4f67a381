"""Outputs uploaded to presigned PUT URLs instead of answered: against a loopback receiver that
keeps what it is sent, decoded here."""

from __future__ import annotations

import base64
import contextlib
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
    from video_endpoint.jobs import JobSettings

    uploading.open_jobs(JobSettings())
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


def test_malformed_bracketed_hosts_are_refused_by_field_not_raised(uploading, receiver):
    """urlsplit raises ValueError for these: the handler answers, naming the field."""
    for url in ("http://[::1/x", "http://[127.0.0.1]/x", "http://[::1]]/x"):
        answer = uploading({"inputs": {**REQUEST, "upload": {"mp4": url}}})
        assert (answer["ok"], answer["error"]["type"], answer["error"]["field"]) == (
            False, "invalid_request", "upload.mp4"), url
    assert receiver.received == []


def test_a_host_listed_without_a_port_means_its_schemes_default_port(uploading, receiver, monkeypatch):
    """`127.0.0.1` listed lets through http://127.0.0.1/ (port 80) and https on 443, never another
    port of that host (a port scan through the server)."""
    monkeypatch.setattr(uploading, "upload_hosts", ("127.0.0.1",))
    answer = uploading({"inputs": {**REQUEST, "upload": {"mp4": receiver.url("/x.mp4")}}})
    assert (answer["ok"], answer["error"]["field"]) == (False, "upload.mp4")
    assert "VIDEO_UPLOAD_HOSTS" in answer["error"]["message"] and receiver.received == []
    from video_endpoint.http_url import parse_allowed_url

    assert parse_allowed_url("http://127.0.0.1/x", ("127.0.0.1",), "S").effective_port == 80
    assert parse_allowed_url("https://127.0.0.1:443/x", ("127.0.0.1",), "S").effective_port == 443
    assert parse_allowed_url("http://127.0.0.1:6379/", ("127.0.0.1:6379",), "S").port == 6379


def test_an_unreachable_store_is_named_without_the_systems_words(uploading, receiver, monkeypatch):
    """No errno or resolver text in the answer: it would tell which ports of a listed host are open."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(uploading, "upload_hosts", (f"127.0.0.1:{port}",))
    answer = uploading({"inputs": {**REQUEST, "upload": {"mp4": f"http://127.0.0.1:{port}/x.mp4"}}})
    assert (answer["ok"], answer["error"]["type"]) == (False, "upload_failed")
    assert answer["error"]["message"] == "could not upload mp4 (not reached)"


class SilentStore:
    """A store on 127.0.0.1 that takes each connection and its PUT, then answers nothing (until
    `close`, which hangs up on all of them)."""

    def __init__(self) -> None:
        import socket

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopped = threading.Event()
        self.connections: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self.answer, args=(connection,), daemon=True).start()

    def answer(self, connection) -> None:
        self.stopped.wait()

    def close(self) -> None:
        import socket

        self.stopped.set()
        with contextlib.suppress(OSError):  # wakes the accept (a plain close leaves the port listening)
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for connection in self.connections:
            connection.close()


class Trickler(SilentStore):
    """A store that reads the PUT, then sends its answer one byte every `pause` seconds."""

    def __init__(self, pause: float = 0.3) -> None:
        self.pause = pause
        super().__init__()

    def answer(self, connection) -> None:
        with connection:
            connection.settimeout(5)
            try:
                connection.recv(1 << 20)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    if self.stopped.wait(self.pause):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


def test_a_trickling_store_is_cut_at_the_whole_attempts_deadline():
    """Each socket read gets a byte well within its timeout; the attempt as a whole does not."""
    from video_endpoint import uploads
    from video_endpoint.http_url import parse_allowed_url

    store = Trickler()
    try:
        target = parse_allowed_url(f"http://{store.host}/x.gif", (store.host,), "S")
        started = time.monotonic()
        with pytest.raises(uploads.UploadFailed) as failed:
            uploads.upload_all({"gif": b"GIF89a"}, {"gif": target}, timeout_s=1.0, deadline_s=2.5)
        took = time.monotonic() - started
    finally:
        store.close()
    assert took < 10, took  # three 1 s attempts and their pauses, cut at the 2.5 s deadline
    assert "no answer" in failed.value.message or "took over" in failed.value.message
