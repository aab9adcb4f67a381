"""The CLI's client for a deployed endpoint against endpoints that misbehave: redirects, answers
that never end or never stop, answers it cannot read, and the flags that used to be taken at face
value. Each endpoint here is a real HTTP server on 127.0.0.1 that answers as scripted."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import typing
from collections.abc import Callable

import pytest

from video_endpoint import cli, client

TOKEN = "client-token-0123456789"


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next step of `script`: a callable given the handler."""

    script: typing.ClassVar[list[Callable]] = []
    seen: typing.ClassVar[list[dict]] = []
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        step(self)

    def log_message(self, *args):
        pass


def answer_json(answer: dict, status: int = 200) -> Callable:
    body = json.dumps(answer).encode()  # now: the server thread allocates nothing a memory test would count

    def step(handler):
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return step


@pytest.fixture()
def endpoint():
    """endpoint(*steps) -> (url, the requests it received)."""
    servers = []

    def start(*steps: Callable) -> tuple[str, list[dict]]:
        handler = type("Handler", (_Scripted,), {"script": list(steps), "seen": []})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler.seen

    yield start
    for server in servers:
        server.shutdown()


def test_a_redirect_to_another_host_never_gets_the_token(endpoint):
    """A 302 to another host:port used to receive `Authorization: Bearer ...`."""
    elsewhere, stolen = endpoint(answer_json({"ok": True}))

    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", elsewhere + "/")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    url, _ = endpoint(redirect)
    with pytest.raises(client.EndpointError, match=r"redirect.*not followed"):
        client.call(url, TOKEN, {"inputs": {"job_id": "x"}})
    assert stolen == []


def test_answers_are_bounded_in_size_and_time(endpoint):
    """A 1.5 GiB body used to be read whole (3.6 GB RSS), and a server trickling a byte every 5 s
    kept the client past its 60 s timeout."""
    def endless(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # no length: read until the connection closes
        handler.close_connection = True
        try:
            while True:
                handler.wfile.write(b" " * 65536)
        except OSError:
            pass

    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            for _ in range(1000):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.3)
        except OSError:
            pass

    url, _ = endpoint(endless)
    with pytest.raises(client.EndpointError, match="over this client's 1,048,576 bytes"):
        client.call(url, None, {}, max_bytes=2**20)
    url, _ = endpoint(answer_json({"ok": True, "pad": "x" * 3_000_000}))
    with pytest.raises(client.EndpointError, match=r"answered 3,000,0\d\d bytes, over"):
        client.call(url, None, {}, max_bytes=2**20)
    url, _ = endpoint(trickle)
    started = time.perf_counter()
    with pytest.raises(client.EndpointError, match=r"did not answer completely within 1\.5 s"):
        client.call(url, None, {}, timeout=1.5)
    assert time.perf_counter() - started < 3


QUEUED = {"ok": True, "job": {"id": "j1", "status": "queued", "progress": {"step": 0, "total": None}}}


def succeeded(outputs: dict) -> dict:
    return {"ok": True, "job": {"id": "j1", "status": "succeeded", "progress": {"step": 2, "total": 2}},
            "outputs": outputs, "diagnostics": {"seed": 1}}


@pytest.mark.parametrize(("answers", "message"), [
    ([{"ok": True, "job": "x"}], "a job this client cannot read"),
    ([{"ok": True, "job": {}}], "a job this client cannot read"),
    ([QUEUED, {"ok": True, "job": {"id": "j1", "status": "running"}}], "a job this client cannot read"),
    ([QUEUED, succeeded({})], "no gif_base64 output"),
    ([QUEUED, succeeded({"gif_base64": "not base64!"})], "gif_base64 is not base64"),
    ([QUEUED, succeeded({"gif_base64": 12})], "no gif_base64 output"),
])
def test_answers_it_cannot_read_are_one_line_errors(endpoint, tmp_path, capsys, answers, message):
    """These used to end in a traceback."""
    url, _ = endpoint(*(answer_json(answer) for answer in answers))
    out = tmp_path / "out.gif"
    code = cli.main(["generate", "--url", url, "--prompt", "x", "--poll", "0.01", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err, err
    assert not out.exists()


def test_the_token_comes_from_the_environment_or_a_file(endpoint, tmp_path, monkeypatch, capsys):
    gif = base64.b64encode(b"GIF89a-bytes").decode()
    url, seen = endpoint(answer_json(QUEUED), answer_json(succeeded({"gif_base64": gif})))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert cli.main(["generate", "--url", url, "--prompt", "x", "--poll", "0.01", "-o", str(tmp_path / "a.gif")]) == 0
    assert (tmp_path / "a.gif").read_bytes() == b"GIF89a-bytes"
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-0123\n")
    assert cli.main(["generate", "--url", url, "--token-file", str(token_file), "--prompt", "x", "--poll", "0.01",
                     "-o", str(tmp_path / "b.gif")]) == 0
    assert {r["headers"]["Authorization"] for r in seen[:2]} == {f"Bearer {TOKEN}"}
    assert {r["headers"]["Authorization"] for r in seen[2:]} == {"Bearer from-a-file-0123"}
    capsys.readouterr()


@pytest.mark.parametrize(("argv", "message"), [
    (["--url", "::::"], "must be an http(s) URL"),
    (["--url", "file:///etc/passwd"], "must be an http(s) URL"),
    (["--url", "http://user:pw@127.0.0.1:1/"], "must not carry a user name or password"),
    (["--url", "http://[::1"], "with a valid host"),  # urlsplit raised: a traceback
    (["--url", "http://[127.0.0.1]/x"], "with a valid host"),
    (["--model", "/nonexistent/dir", "-o", "{tmp}/a.gif", "{tmp}/a.gif"], "names {tmp}/a.gif twice"),
    (["--model", "/nonexistent/dir", "-o", "{tmp}/a.gif", "{tmp}/b.gif"], "two .gif files"),
    (["--model", "/nonexistent/dir", "-o", "{tmp}/exists.gif"], "exists.gif exists: choose another name"),
])
def test_flags_are_refused_before_anything_runs(tmp_path, capsys, argv, message):
    """`--url file:///etc/passwd` used to print the file; `-o a.gif a.gif` was refused only after
    the model had loaded; an existing output was overwritten without a word."""
    (tmp_path / "exists.gif").write_bytes(b"precious")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.gif")]
    code = cli.main(["generate", "--prompt", "x", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message.replace("{tmp}", str(tmp_path)) in err, err
    assert "root:" not in err and "Traceback" not in err and (tmp_path / "exists.gif").read_bytes() == b"precious"


def test_a_model_path_that_does_not_exist_is_not_looked_up_on_the_hub(tmp_path, capsys):
    """`--model /nonexistent/dir` used to be taken as a Hub id: the CLI tried the network."""
    started = time.perf_counter()
    code = cli.main(["generate", "--model", "/nonexistent/dir", "--prompt", "x", "-o", str(tmp_path / "a.gif")])
    err = capsys.readouterr().err
    assert code == 1 and "no model directory /nonexistent/dir" in err and "Traceback" not in err, err
    assert time.perf_counter() - started < 10


def test_overwrite_replaces_an_existing_output(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out.gif"
    out.write_bytes(b"old")
    assert cli.main(["generate", "--model", str(tiny_model_dir), "--prompt", "x", "--frames", "4", "--height", "64",
                     "--width", "96", "--steps", "2", "--overwrite", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"GIF8")
    capsys.readouterr()


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    from tests.conftest import serving

    with serving(tiny_model_dir, tmp_path_factory.mktemp("client") / "server.log",
                 {"VIDEO_API_TOKEN": TOKEN}) as (url, _):
        yield url


def test_the_python_client_returns_decoded_files_and_raises_the_endpoint_s_error(served):
    from tests.media import decode_gif, decode_zip

    video_client = client.VideoClient(served, TOKEN, poll_s=0.05)
    seen = []
    video = video_client.generate("waves", num_frames=9, height=64, width=96, num_inference_steps=3, seed=2,
                                  outputs=["gif", "zip"], on_progress=lambda *report: seen.append(report))
    assert set(video.files) == {"gif", "zip"} and video.uploads == {}
    assert decode_gif(video.files["gif"]).frames.shape == (9, 64, 96, 3)
    assert video.diagnostics["seed"] == 2 and seen[-1] == ("succeeded", 3, 3)
    assert [step for _, step, _ in seen] == sorted(step for _, step, _ in seen)  # progress only moves on
    direct = video_client.generate("waves", job=False, num_frames=9, height=64, width=96, num_inference_steps=3,
                                   seed=2, outputs=["zip"])
    assert (decode_zip(direct.files["zip"]).frames == decode_zip(video.files["zip"]).frames).all()
    with pytest.raises(client.RequestFailed) as failed:
        video_client.generate("waves", height=100)
    assert (failed.value.error["type"], failed.value.error["field"]) == ("invalid_request", "height")
    with pytest.raises(client.RequestFailed) as refused:
        client.VideoClient(served, "wrong").generate("waves", job=False)
    assert refused.value.error["field"] == "authorization"
    with pytest.raises(client.EndpointError):
        client.VideoClient("ftp://example.org")


def test_a_hostile_servers_text_reaches_the_terminal_without_control_characters(endpoint, tmp_path, capsys):
    """A job status or error message holding escape sequences (window title, clear screen) used to
    reach stderr raw through the progress bar and the error line."""
    evil = "\x1b]0;TITLE-HIJACK\x07\x1b[2J\x1b[31mrunning"
    running = {"ok": True, "job": {"id": "j1", "status": evil, "progress": {"step": 1, "total": 2}}}
    failed = {"ok": False, "error": {"type": "internal\x1b[2J", "field": None, "message": "no\rpe\x9b31m"}}
    url, _ = endpoint(answer_json(QUEUED), answer_json(running), answer_json(failed))
    code = cli.main(["generate", "--url", url, "--prompt", "p", "--poll", "0.01", "-o", str(tmp_path / "a.gif")])
    assert code == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\x9b" not in err  # (tqdm writes its own \r)
    assert "TITLE-HIJACK" in err  # shown, escaped
    with pytest.raises(client.RequestFailed) as refused:
        client.VideoClient(url).generate("p", job=False)
    assert "\x1b" not in str(refused.value) and "\\x1b" in str(refused.value)


def test_an_answer_nested_too_deeply_is_the_clients_error(endpoint):
    def nested(handler):
        body = b"[" * 200_000
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    url, _ = endpoint(nested)
    with pytest.raises(client.EndpointError, match="did not answer JSON"):
        client.call(url, None, {})


def test_a_job_that_never_ends_is_given_up_and_cancelled(endpoint):
    running = {"ok": True, "job": {"id": "j1", "status": "running", "progress": {"step": 1, "total": 2}}}
    url, seen = endpoint(answer_json(QUEUED), answer_json(running))
    started = time.monotonic()
    with pytest.raises(client.EndpointError, match=r"did not end within 0\.5 s \(still running\); cancelled"):
        client.run_job(url, None, {"inputs": {"prompt": "p"}}, poll_s=0.05, max_wait_s=0.5)
    assert time.monotonic() - started < 5
    assert json.loads(seen[-1]["body"]) == {"inputs": {"job_id": "j1", "cancel": True}}


def test_a_large_answer_is_held_about_twice_at_most(endpoint):
    """A 300 MB answer used to peak at about 3x its size (a growing buffer, a copy, the text)."""
    import tracemalloc

    outputs = {"mp4_base64": base64.b64encode(b"\0" * 30_000_000).decode()}
    url, _ = endpoint(answer_json({"ok": True, "outputs": outputs}))
    size = len(json.dumps({"ok": True, "outputs": outputs}))
    tracemalloc.start()
    try:
        answer = client.call(url, None, {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer["outputs"]["mp4_base64"] == outputs["mp4_base64"]
    assert peak < 2.2 * size, peak / size


def test_a_job_store_away_for_a_moment_is_waited_out(endpoint):
    """With several replicas on Redis, a poll during a Redis restart answers `unavailable`: the job
    is not lost, so the client keeps polling (it used to return that error as the job's end)."""
    away = {"ok": False, "error": {"type": "unavailable", "field": None, "message": "the job store ..."}}
    url, seen = endpoint(answer_json(QUEUED), answer_json(away, 503), answer_json(away, 503),
                         answer_json(succeeded({"gif_base64": "R0lG"})))
    statuses = []
    answer = client.run_job(url, None, {"inputs": {"prompt": "p"}}, poll_s=0.01,
                            on_progress=lambda status, step, total: statuses.append(status))
    assert answer["outputs"] == {"gif_base64": "R0lG"} and statuses == ["unavailable", "unavailable", "succeeded"]
    assert len(seen) == 4
