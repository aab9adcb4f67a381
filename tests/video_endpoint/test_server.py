"""The local server, started for real in a subprocess, driven with curl and httpx."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from tests.conftest import REPORT, jpeg_base64, serving
from tests.media import decode_gif, decode_video, decode_zip, encoded_video, synthetic_clip
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789"
needs_curl = pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")


@pytest.fixture(scope="module")
def store():
    """A loopback PUT receiver, the one host the server may upload to."""
    from tests.video_endpoint.test_uploads import Receiver

    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def silent_store():
    """A loopback store that takes uploads and never answers, also allowed."""
    from tests.video_endpoint.test_uploads import SilentStore

    silent = SilentStore()
    yield silent
    silent.close()


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory, store, silent_store):
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = {"VIDEO_API_TOKEN": TOKEN, "VIDEO_QUEUE_DEPTH": "1",
           "VIDEO_UPLOAD_HOSTS": f"{store.host},{silent_store.host}",
           "VIDEO_MAX_BODY_BYTES": str(2 * 1024 * 1024), "VIDEO_BODY_TIMEOUT_S": "2", "VIDEO_HEADER_TIMEOUT_S": "2",
           "VIDEO_MAX_EVENT_STREAMS": "70", "VIDEO_MAX_INPUT_DECODE_PIXELS": str(10**12)}
    with serving(tiny_model_dir, log_path, env) as (url, process):
        yield {"url": url, "log": log_path, "pid": process.pid}
    assert TOKEN not in log_path.read_text()  # the token never reaches the log


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(server, inputs: dict, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(server["url"], json={"inputs": inputs}, headers=headers or auth(), timeout=120)


def card_example(number: int, url: str, workdir: Path) -> str:
    """The API card's curl examples, verbatim but for the URL and the token."""
    examples = {
        1: """curl -sS -X POST "<ENDPOINT>" \\
-H "Authorization: Bearer <TOKEN>" \\
-H "Content-Type: application/json" \\
-d '{
"inputs": {
"prompt": "a cyberpunk street in rain, neon lights",
"num_frames": 24,
"outputs": ["gif"]
}
}' \\
| jq -er '.outputs.gif_base64' | base64 --decode > output.gif""",
        2: """IMG_B64=$(base64 -i my_input.jpg)
curl -sS -X POST "<ENDPOINT>" \\
-H "Authorization: Bearer <TOKEN>" \\
-H "Content-Type: application/json" \\
-d "{
\\"inputs\\": {
\\"prompt\\": \\"waves crashing on the shore, moving water\\",
\\"image\\": \\"$IMG_B64\\",
\\"num_frames\\": 32,
\\"outputs\\": [\\"gif\\"]
}
}" \\
| jq -er '.outputs.gif_base64' | base64 --decode > animated.gif""",
        3: """curl -sS -X POST "<ENDPOINT>" \\
-H "Authorization: Bearer <TOKEN>" \\
-H "Content-Type: application/json" \\
-d '{
"inputs": {
"prompt": "slow pan over a mars landscape",
"num_frames": 48,
"fps": 24,
"outputs": ["webm"],
"webm": { "quality": "best" }
}
}' \\
| jq -er '.outputs.webm_base64' | base64 --decode > output.webm""",
    }
    script = examples[number].replace("<ENDPOINT>", url).replace("<TOKEN>", TOKEN)
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=workdir, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


@needs_curl
def test_card_curl_examples_verbatim(server, tmp_path):
    (tmp_path / "my_input.jpg").write_bytes(base64.b64decode(jpeg_base64(300, 200)))
    card_example(1, server["url"], tmp_path)
    gif = decode_gif((tmp_path / "output.gif").read_bytes())
    assert gif.frames.shape == (24, 512, 512, 3)
    assert sum(gif.durations_ms) == pytest.approx(2000, abs=10)
    card_example(2, server["url"], tmp_path)  # GNU base64 wraps at 76 columns: raw newlines in JSON
    assert decode_gif((tmp_path / "animated.gif").read_bytes()).frames.shape == (32, 512, 512, 3)
    card_example(3, server["url"], tmp_path)
    video = decode_video((tmp_path / "output.webm").read_bytes())
    assert (video.codec, video.frames.shape, video.fps) == ("vp9", (48, 512, 512, 3), 24)


SMALL = {"height": 64, "width": 96, "num_inference_steps": 2, "num_frames": 4}


def test_auth_is_required_everywhere(server):
    for headers in ({}, auth("wrong"), {"Authorization": TOKEN}):
        for response in (httpx.post(server["url"], json={"inputs": {"prompt": "x"}}, headers=headers),
                         httpx.get(f"{server['url']}/health", headers=headers)):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["ok"] is False


def test_health_names_the_model(server):
    health = httpx.get(f"{server['url']}/health", headers=auth()).json()
    assert health["model"]["family"] == "ltx-video" and health["device"] == "cpu"
    assert health["dtype"] == "float32"


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b'{"inputs": {"prompt": "x"', "application/json", 400),
    (b"\xff\xfe{}", "application/json", 400),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    (b"", "application/json", 400),
    (b"prompt=x", "application/x-www-form-urlencoded", 400),
    (b'{"inputs": {"prompt": "x", "height": 100}}', "application/json", 400),
])
def test_bad_bodies_get_json_errors(server, body, content_type, status):
    response = httpx.post(server["url"], content=body, headers={**auth(), "Content-Type": content_type})
    assert response.status_code == status
    assert response.json()["ok"] is False
    assert response.headers["x-request-id"]
    assert "Traceback" not in response.text


def test_oversize_body_is_refused_before_reading(server):
    response = httpx.post(server["url"], content=b"x" * (3 * 1024 * 1024),
                          headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 413


def test_raw_file_with_its_media_type(server):
    response = post(server, {"prompt": "x", **SMALL, "outputs": ["webm"], "return_base64": False})
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/webm"
    assert json.loads(response.headers["x-diagnostics"])["num_frames"] == 4
    assert decode_video(response.content).frames.shape == (4, 64, 96, 3)
    several = post(server, {"prompt": "x", **SMALL, "outputs": ["gif", "zip"], "return_base64": False})
    assert several.status_code == 400 and several.json()["error"]["field"] == "return_base64"


def test_request_id_is_echoed(server):
    response = post(server, {"prompt": "x", **SMALL}, headers={**auth(), "X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert "request abc-123: step 2/2" in server["log"].read_text()
    assert response.json()["diagnostics"]["request_id"] == "abc-123"
    generated = post(server, {"prompt": "x", **SMALL}, headers=auth())  # none sent: the one made is in both
    assert generated.json()["diagnostics"]["request_id"] == generated.headers["x-request-id"]
    job = httpx.post(f"{server['url']}/jobs", json={"inputs": {"prompt": "x", **SMALL}},
                     headers={**auth(), "X-Request-Id": "job-trace-7"}).json()["job"]
    assert job["request_id"] == "job-trace-7"
    while (answer := httpx.get(f"{server['url']}/jobs/{job['id']}", headers=auth()).json())["job"]["status"] in (
            "queued", "running"):
        time.sleep(0.05)
    assert answer["job"]["request_id"] == answer["diagnostics"]["request_id"] == "job-trace-7"
    assert f"job {job['id']}: step 2/2 (" in server["log"].read_text()
    assert all("request job-trace-7" in line for line in server["log"].read_text().splitlines()
               if f"job {job['id']}:" in line)


def test_the_server_says_where_it_serves_once_ready(server):
    said = [line for line in server["log"].read_text().splitlines() if "serving at" in line]
    assert len(said) == 1 and f"{server['url']}/openapi.json" in said[0] and f"{server['url']}/metrics" in said[0]
    assert httpx.get(f"{server['url']}/openapi.json", headers=auth()).json()["openapi"].startswith("3.")


def test_huggingface_hubs_inference_client_reaches_it_through_two_calls(server, tmp_path):
    """The calls of the real huggingface_hub that reach a custom endpoint (docs/operations.md)."""
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=server["url"], api_key=TOKEN)
    video = client.text_to_image("waves", height=64, width=96, num_inference_steps=2, seed=3,
                                 extra_body={"num_frames": 9, "fps": 10})
    assert (video.format, video.size, video.n_frames, video.info["duration"]) == ("GIF", (96, 64), 9, 100)
    image = tmp_path / "first.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(image)
    image_to_video = server["log"].read_text().count(": ok, i2v, 9 frames")
    moved = client.image_to_image(str(image), prompt="waves", num_inference_steps=2, num_frames=9, height=64,
                                  width=96, seed=3)
    assert (moved.size, moved.n_frames) == ((96, 64), 9)
    assert server["log"].read_text().count(": ok, i2v, 9 frames") == image_to_video + 1  # the image reached it
    requests_before = server["log"].read_text().count('"POST / HTTP/1.1"')
    with pytest.raises(ValueError, match="not supported for provider"):
        client.text_to_video("waves")
    assert server["log"].read_text().count('"POST / HTTP/1.1"') == requests_before  # refused in the client


def queue_of(server) -> dict:
    """`/health`'s queue: in_flight, waiting, running."""
    return httpx.get(f"{server['url']}/health", headers=auth(), timeout=5).json()["queue"]


def frames_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return decode_zip(base64.b64decode(response.json()["outputs"]["zip_base64"])).frames


def test_queue_health_and_concurrent_requests(server):
    slow = {"prompt": "slow", "height": 512, "width": 512, "num_frames": 17, "num_inference_steps": 30,
            "outputs": ["zip"]}
    alone = {seed: frames_of(post(server, {**slow, "seed": seed})) for seed in (1, 2)}
    results: dict[int, httpx.Response] = {}

    def send(seed: int) -> None:
        results[seed] = post(server, {**slow, "seed": seed})

    threads = [threading.Thread(target=send, args=(seed,)) for seed in (1, 2)]
    threads[0].start()
    wait_until(lambda: queue_of(server)["running"] == "request", "the first request to run")
    threads[1].start()
    wait_until(lambda: queue_of(server)["waiting"] == 1, "the second request to wait behind it")
    started = time.perf_counter()
    health = httpx.get(f"{server['url']}/health", headers=auth(), timeout=5)
    health_seconds = time.perf_counter() - started
    busy = post(server, {**slow, "seed": 3})  # one running, one waiting: depth 1 is full
    for thread in threads:
        thread.join()
    assert health.status_code == 200 and health.json()["queue"]["in_flight"] == 2
    assert health_seconds < 1.0
    assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
    assert busy.json()["error"]["type"] == "busy"  # as a full job queue says (it said "internal")
    for seed in (1, 2):
        np.testing.assert_array_equal(frames_of(results[seed]), alone[seed])


def test_every_answer_has_a_request_id_and_no_token_gets_401_on_any_path(server):
    url = server["url"]
    answers = [httpx.get(f"{url}/health", headers=auth()), httpx.get(f"{url}/nowhere", headers=auth()),
               httpx.get(url, headers=auth()),  # POST only: 405
               httpx.post(url, content=b'{"inputs": {"prompt": "x", "num_frames": 1' + b"0" * 5000 + b"}}",
                          headers={**auth(), "Content-Type": "application/json"})]
    assert [answer.status_code for answer in answers] == [200, 404, 405, 400]
    assert all(answer.headers.get("x-request-id") for answer in answers)
    # 404 and 405 in the envelope (they were plain text)
    assert answers[1].json()["ok"] is False and "POST /jobs" in answers[1].json()["error"]["message"]
    assert answers[2].json()["error"]["type"] == "invalid_request" and "POST" in answers[2].json()["error"]["message"]
    assert answers[2].headers["allow"] == "POST"
    assert answers[3].json()["ok"] is False and "Traceback" not in answers[3].text  # was a 500 in text/plain
    for path in ("/nowhere", "/health", "/"):
        for method in ("GET", "POST", "DELETE"):
            answer = httpx.request(method, f"{url}{path}")
            assert answer.status_code == 401, (method, path)
            assert answer.headers["x-request-id"] and answer.json()["ok"] is False


def test_a_trickling_body_times_out(server):
    port = int(server["url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode())
        started = time.perf_counter()
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert 1.5 < time.perf_counter() - started < 6  # VIDEO_BODY_TIMEOUT_S=2


def test_dropped_clients_free_the_model(server):
    """Two clients that hang up (one generating, one waiting) cost the next client at most a step:
    alone, each of theirs takes longer than the whole test allows."""
    slow = {"prompt": "slow", "height": 768, "width": 768, "num_frames": 97, "num_inference_steps": 100,
            "outputs": ["zip"]}
    hung_up: list[bool] = []

    def hang_up() -> None:
        try:
            httpx.post(server["url"], json={"inputs": slow}, headers=auth(), timeout=1.0)
        except httpx.ReadTimeout:
            hung_up.append(True)

    dropped_before = server["log"].read_text().count("client disconnected")
    dropped = [threading.Thread(target=hang_up) for _ in range(2)]
    for count, thread in enumerate(dropped, start=1):
        thread.start()
        wait_until(lambda count=count: queue_of(server)["in_flight"] == count, f"request {count} to be let in",
                   timeout_s=1)
    for thread in dropped:
        thread.join()
    assert hung_up == [True, True]
    started = time.perf_counter()
    live = post(server, {"prompt": "live", **SMALL, "outputs": ["zip"]})
    assert frames_of(live).shape == (4, 64, 96, 3)
    assert time.perf_counter() - started < 5
    assert server["log"].read_text().count("client disconnected") == dropped_before + 2


def test_a_body_of_countless_values_is_refused_unparsed(server):
    """Parsing a body of millions of small values holds the interpreter, /health included, whatever
    thread does it: such a body is refused before it is parsed."""
    body = b"[" + b",".join([b"1"] * 900_000) + b"]"  # 1.8 MB, under the test server's 2 MiB limit
    response = httpx.post(server["url"], content=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "body holds more JSON values than a request can have"
    prompt_with_commas = ", ".join(["neon lights"] * 300)  # a real prompt's commas are no problem
    assert post(server, {"prompt": prompt_with_commas, **SMALL}).status_code == 200


def test_job_routes_and_their_event_stream(server, tmp_path):
    url, inputs = server["url"], {"prompt": "waves", "height": 64, "width": 96, "num_frames": 9,
                                  "num_inference_steps": 6, "seed": 2, "outputs": ["zip"]}
    assert httpx.post(f"{url}/jobs", json={"inputs": inputs}, timeout=30).status_code == 401  # same auth
    submitted = httpx.post(f"{url}/jobs", json={"inputs": inputs}, headers=auth(), timeout=30)
    assert submitted.status_code == 202 and submitted.json()["job"]["status"] == "queued"
    job_id = submitted.json()["job"]["id"]
    events: list[tuple[str, dict]] = []
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", headers=auth(), timeout=60) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "result" and set(kinds[:-1]) == {"progress"}
    # replayed from the submission on, however late the stream started: started, then one per step
    assert [data["status"] for _, data in events[:-1]] == ["running"] * 7
    assert [data["progress"]["step"] for _, data in events[:-1]] == list(range(7))
    result = events[-1][1]
    assert result["job"]["status"] == "succeeded"
    polled = httpx.get(f"{url}/jobs/{job_id}", headers=auth(), timeout=30).json()
    np.testing.assert_array_equal(decode_zip(base64.b64decode(polled["outputs"]["zip_base64"])).frames,
                                  decode_zip(base64.b64decode(result["outputs"]["zip_base64"])).frames)
    synchronous = post(server, inputs).json()
    np.testing.assert_array_equal(decode_zip(base64.b64decode(synchronous["outputs"]["zip_base64"])).frames,
                                  decode_zip(base64.b64decode(result["outputs"]["zip_base64"])).frames)
    # cancel through DELETE; the body protocol on POST / reaches the same jobs
    long = post(server, {**inputs, "num_inference_steps": 100, "async": True}).json()["job"]["id"]
    assert httpx.delete(f"{url}/jobs/{long}", headers=auth(), timeout=30).status_code == 200
    deadline = time.monotonic() + 30
    while (state := post(server, {"job_id": long}).json()["job"]["status"]) == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state == "cancelled"
    raw_job = httpx.post(f"{url}/jobs", json={"inputs": {**inputs, "return_base64": False}}, headers=auth())
    assert raw_job.status_code == 400 and raw_job.json()["error"]["field"] == "return_base64"  # was 500 per poll
    missing = httpx.get(f"{url}/jobs/nope", headers=auth(), timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "job_id"
    assert httpx.get(f"{url}/jobs/nope/events", headers=auth(), timeout=30).status_code == 404


def test_cli_client_runs_a_job_on_the_server(server, tmp_path, capsys):
    from video_endpoint import cli

    out = tmp_path / "clip.mp4"
    code = cli.main(["generate", "--url", server["url"], "--token", TOKEN, "--prompt", "waves", "--frames", "10",
                     "--fps", "10", "--height", "64", "--width", "96", "--steps", "3", "--poll", "0.1",
                     "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["num_frames"] == 10
    video = decode_video(out.read_bytes())
    assert video.frames.shape == (10, 64, 96, 3)
    assert cli.main(["generate", "--url", server["url"], "--token", "wrong", "--prompt", "x",
                     "-o", str(tmp_path / "x.gif")]) == 1
    assert "wrong bearer token" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_job_keys_never_skip_the_server_guards(server):
    """`"async": false` and `"webhook": null` are plain synchronous requests: they used to skip the
    queue bound (all 10 of 10 ran at queue depth 4), the hang-up check and the raw-output check."""
    slow = {"prompt": "slow", "height": 512, "width": 512, "num_frames": 65, "num_inference_steps": 100,
            "outputs": ["zip"]}
    log_before = server["log"].read_text().count("client disconnected")
    hung_up: list[bool] = []

    def hang_up(extra: dict) -> None:
        try:
            httpx.post(server["url"], json={"inputs": {**slow, **extra}}, headers=auth(), timeout=3.0)
        except httpx.ReadTimeout:
            hung_up.append(True)

    clients = [threading.Thread(target=hang_up, args=(extra,)) for extra in ({"async": False}, {"webhook": None})]
    for count, thread in enumerate(clients, start=1):
        thread.start()
        wait_until(lambda count=count: queue_of(server)["in_flight"] == count, f"request {count} to be let in",
                   timeout_s=3)
    for extra in ({}, {"async": False}, {"webhook": None}):  # one running, one waiting: depth 1 is full
        busy = post(server, {"prompt": "x", **SMALL, **extra})
        assert busy.status_code == 503 and busy.json()["error"]["type"] == "busy", (extra, busy.text)
    two_raw = post(server, {"prompt": "x", **SMALL, "async": False, "return_base64": False, "outputs": ["gif", "zip"]})
    assert two_raw.status_code == 400 and two_raw.json()["error"]["field"] == "return_base64"
    for thread in clients:
        thread.join()
    assert hung_up == [True, True]
    started = time.perf_counter()
    assert frames_of(post(server, {"prompt": "live", **SMALL, "async": False, "outputs": ["zip"]})).shape[0] == 4
    assert time.perf_counter() - started < 5  # both dropped: stopped at their next step
    assert server["log"].read_text().count("client disconnected") == log_before + 2


def open_request(server, target: str, rcvbuf: int | None = None) -> socket.socket:
    """A connection that sends `GET target` and never reads."""
    port = int(server["url"].rsplit(":", 1)[1])
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    return sock


def test_idle_event_streams_hold_no_threads(server):
    """Each event stream on a queued job used to hold one of the server's 40 worker threads: with 60
    open, a poll took 5.1 s and a bad request 10 s. Now they wait on the event loop, up to
    VIDEO_MAX_EVENT_STREAMS (70 here); more get 503."""
    url = server["url"]
    long = {"prompt": "long", "height": 768, "width": 768, "num_frames": 97, "num_inference_steps": 100,
            "outputs": ["zip"]}
    running = post(server, {**long, "async": True}).json()["job"]["id"]
    queued = post(server, {"prompt": "queued", **SMALL, "outputs": ["zip"], "async": True}).json()["job"]["id"]
    streams = [open_request(server, f"/jobs/{queued}/events") for _ in range(60)]
    try:
        time.sleep(1.0)  # the streams are open and waiting (the server shows no count of them to wait on)
        started = time.perf_counter()
        polled = httpx.get(f"{url}/jobs/{queued}", headers=auth(), timeout=30)
        poll_s = time.perf_counter() - started
        started = time.perf_counter()
        bad = post(server, {"prompt": "x", "height": 100})
        bad_s = time.perf_counter() - started
        REPORT.append(f"with 60 idle event streams: poll {poll_s * 1000:.0f} ms, bad request {bad_s * 1000:.0f} ms")
        assert polled.status_code == 200 and polled.json()["job"]["status"] == "queued"
        assert bad.status_code == 400 and poll_s < 1.0 and bad_s < 1.0
        streams += [open_request(server, f"/jobs/{queued}/events") for _ in range(10)]
        time.sleep(0.5)  # as above; a 71st stream asked for too early would open and wait, not be refused
        over = httpx.get(f"{url}/jobs/{queued}/events", headers=auth(), timeout=30)
        assert over.status_code == 503 and over.json()["error"]["type"] == "busy", over.text[:300]
        assert httpx.get(f"{url}/jobs/{queued}", headers=auth()).json()["job"]["status"] == "queued"
    finally:
        for sock in streams:
            sock.close()
        for job_id in (queued, running):
            httpx.delete(f"{url}/jobs/{job_id}", headers=auth(), timeout=30)
    deadline = time.monotonic() + 10
    while (answer := httpx.get(f"{url}/jobs/{queued}/events", headers=auth(), timeout=30)).status_code == 503:
        assert time.monotonic() < deadline  # closed streams free their places
        time.sleep(0.1)
    assert "event: result" in answer.text


def rss_bytes(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def test_clients_that_never_read_share_one_copy_of_an_answer(server):
    """20 clients that asked for a finished job's answer and never read it used to hold a copy each
    (34 MB answer: server RSS 912 -> 1,870 MB)."""
    inputs = {"prompt": "noise", "height": 512, "width": 512, "num_frames": 17, "num_inference_steps": 2,
              "seed": 5, "outputs": ["zip"], "async": True}
    job_id = post(server, inputs).json()["job"]["id"]
    deadline = time.monotonic() + 120
    while (answer := httpx.get(f"{server['url']}/jobs/{job_id}", headers=auth(), timeout=60)).json()["job"][
            "status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    size = len(answer.content)
    frames = decode_zip(base64.b64decode(answer.json()["outputs"]["zip_base64"])).frames
    assert frames.shape == (17, 512, 512, 3) and size > 10 * 2**20
    time.sleep(0.5)  # the answer's own buffers settle before the memory is measured
    before = rss_bytes(server["pid"])
    readers = [open_request(server, f"/jobs/{job_id}" if i % 2 else f"/jobs/{job_id}/events", rcvbuf=4096)
               for i in range(20)]
    time.sleep(3)  # the readers' sockets fill, as far as the server lets them
    grown = rss_bytes(server["pid"]) - before
    for sock in readers:
        sock.close()
    REPORT.append(f"20 non-reading clients of a {size / 2**20:.1f} MiB answer: server RSS +{grown / 2**20:.1f} MiB")
    assert grown < 2 * size, f"RSS grew {grown / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB answer"
    again = httpx.get(f"{server['url']}/jobs/{job_id}", headers=auth(), timeout=60)
    np.testing.assert_array_equal(decode_zip(base64.b64decode(again.json()["outputs"]["zip_base64"])).frames, frames)


def test_connections_that_never_finish_their_headers_are_closed(server):
    """300 connections that never finished their headers used to stay open (no token needed)."""
    port = int(server["url"].rsplit(":", 1)[1])
    socks = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        socks.append(sock)
    time.sleep(3)  # VIDEO_HEADER_TIMEOUT_S=2
    closed = 0
    for sock in socks:
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            closed += sock.recv(100) == b""
        sock.close()
    assert closed == 50
    assert httpx.get(f"{server['url']}/health", headers=auth(), timeout=5).status_code == 200


@needs_curl
def test_readme_conditioning_curls_verbatim(server, tmp_path):
    """README's conditioning examples, as written, against the local server; each answer decoded."""
    import re

    from PIL import Image

    from tests.media import encoded_video, synthetic_clip

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Conditioning:", 1)[1].split("\n## ", 1)[0]
    [script] = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    script = script.replace("https://<ENDPOINT>.aws.endpoints.huggingface.cloud", server["url"]).replace(
        "<TOKEN>", TOKEN)
    Image.fromarray(synthetic_clip(1, 300, 400, seed=1)[0]).save(tmp_path / "first.jpg")
    Image.fromarray(synthetic_clip(1, 300, 400, seed=2)[0]).save(tmp_path / "last.jpg")
    (tmp_path / "clip.mp4").write_bytes(encoded_video(synthetic_clip(40, 96, 128), 12))
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr + server["log"].read_text()[-3000:]
    frames = {name: decode_video((tmp_path / f"{name}.mp4").read_bytes()).frames.shape[0]
              for name in ("first_last", "keyframes", "restyled", "continued")}
    assert frames == {"first_last": 33, "keyframes": 33, "restyled": 33, "continued": 32}


def test_the_liveness_route_needs_no_token_and_says_nothing_of_the_model(server):
    for headers in ({}, auth("wrong")):
        alive = httpx.get(f"{server['url']}/healthz", headers=headers)
        assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
        assert httpx.head(f"{server['url']}/healthz", headers=headers).status_code == 200
        assert httpx.get(f"{server['url']}/health", headers=headers).status_code == 401  # the details stay closed
        assert httpx.post(f"{server['url']}/healthz", headers=headers).status_code == 401


def test_accept_asks_for_the_file_itself(server):
    for accept, fmt in (("video/mp4", "mp4"), ("video/webm, */*;q=0.5", "webm"), ("application/zip", "zip")):
        response = post(server, {"prompt": "waves", **SMALL, "num_frames": 9, "seed": 2},
                        headers={**auth(), "Accept": accept})
        assert response.status_code == 200 and response.headers["content-type"].startswith(accept.split(",")[0])
        frames = decode_zip(response.content).frames if fmt == "zip" else decode_video(response.content).frames
        assert frames.shape == (9, 64, 96, 3)
        assert json.loads(response.headers["x-diagnostics"])["outputs"][fmt]["bytes"] == len(response.content)
    both = post(server, {"prompt": "waves", **SMALL, "outputs": ["gif", "mp4"]},
                headers={**auth(), "Accept": "video/mp4"})
    assert (both.status_code, both.json()["error"]["field"]) == (400, "outputs")
    as_json = post(server, {"prompt": "waves", **SMALL}, headers={**auth(), "Accept": "application/json"})
    assert as_json.headers["content-type"] == "application/json" and as_json.json()["ok"] is True


def test_the_hugging_face_task_shapes_answer_the_video(server):
    """What huggingface_hub's InferenceClient sends for text-to-video and image-to-video."""
    text = httpx.post(server["url"], json={"inputs": "waves on a beach", "parameters": {
        "num_frames": 9.0, "num_inference_steps": 2, "negative_prompt": ["blur", "text"], "seed": 4,
        "target_size": {"width": 96, "height": 64}}}, headers=auth(), timeout=120)
    assert text.status_code == 200 and text.headers["content-type"] == "image/gif"
    assert decode_gif(text.content).frames.shape == (9, 64, 96, 3)
    diagnostics = json.loads(text.headers["x-diagnostics"])
    assert diagnostics["mode"] == "t2v"
    image = httpx.post(server["url"], json={"inputs": jpeg_base64(96, 64), "parameters": {
        "prompt": "the waves move", "num_frames": 9, "num_inference_steps": 2,
        "target_size": {"width": 96, "height": 64}}}, headers={**auth(), "Accept": "video/mp4"}, timeout=120)
    assert image.status_code == 200 and json.loads(image.headers["x-diagnostics"])["mode"] == "i2v"
    assert decode_video(image.content).frames.shape == (9, 64, 96, 3)
    # an image in `inputs` is never the prompt: without parameters.prompt it is refused, as a 4xx
    no_prompt = httpx.post(server["url"], json={"inputs": jpeg_base64(96, 64), "parameters": {"num_frames": 9}},
                           headers=auth(), timeout=120)
    assert (no_prompt.status_code, no_prompt.json()["error"]["field"]) == (400, "parameters.prompt")
    as_json = httpx.post(server["url"], json={"inputs": "waves", "parameters": {**SMALL}},
                         headers={**auth(), "Accept": "application/json"}, timeout=120)
    assert as_json.json()["ok"] is True and "gif_base64" in as_json.json()["outputs"]


def test_an_upload_leaves_the_video_at_the_store_and_a_small_answer(server, store):
    url = store.url("/bucket/out.mp4")
    response = post(server, {"prompt": "waves", **SMALL, "num_frames": 9, "outputs": ["mp4"], "upload": {"mp4": url}})
    assert response.status_code == 200 and len(response.content) < 10_000
    stored = response.json()["outputs"]["mp4_upload"]
    body = next(body for _, path, _, body in store.received if path.startswith("/bucket/out.mp4?"))
    assert decode_video(body).frames.shape == (9, 64, 96, 3) and stored["bytes"] == len(body)
    elsewhere = post(server, {"prompt": "waves", **SMALL, "outputs": ["mp4"],
                              "upload": {"mp4": "http://127.0.0.1:9/x.mp4"}})
    assert (elsewhere.status_code, elsewhere.json()["error"]["field"]) == (400, "upload.mp4")
    raw = post(server, {"prompt": "waves", **SMALL, "outputs": ["mp4"], "upload": {"mp4": url}},
               headers={**auth(), "Accept": "video/mp4"})
    assert (raw.status_code, raw.json()["error"]["field"]) == (400, "upload")


def test_a_silent_store_holds_its_own_request_and_not_the_model(server, silent_store):
    """The upload runs after the model is released: a request sent while another waits on a store
    that never answers is served at once."""
    answers: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(post(server, {
        "prompt": "to a silent store", **SMALL, "num_frames": 9, "outputs": ["gif"],
        "upload": {"gif": f"http://{silent_store.host}/never.gif?sig=s"}})))
    waiting.start()
    deadline = time.monotonic() + 60
    while not silent_store.connections:
        assert time.monotonic() < deadline and waiting.is_alive()
        time.sleep(0.05)
    started = time.monotonic()
    quick = post(server, {"prompt": "meanwhile", **SMALL, "num_frames": 9})
    took = time.monotonic() - started
    silent_store.close()  # hangs up: the upload fails and its request is answered
    waiting.join(timeout=120)
    assert quick.status_code == 200 and decode_gif(base64.b64decode(quick.json()["outputs"]["gif_base64"]))
    assert took < 30, took  # the store's attempt alone may last 60 s
    [slow] = answers
    assert (slow.status_code, slow.json()["error"]["type"], slow.json()["error"]["field"]) == (
        502, "upload_failed", "upload.gif")


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_nothing_outlives_the_server(tiny_model_dir, tmp_path, stop):
    """Its encoder workers and anything else it started end with it, stopped either way (uvicorn
    re-raises SIGTERM after its shutdown, which skips atexit hooks; SIGKILL runs nothing)."""
    import signal

    with serving(tiny_model_dir, tmp_path / "server.log", {"VIDEO_ENCODE_THREADS": "2"}) as (url, process):
        answer = httpx.post(url, json={"inputs": {"prompt": "gif", **SMALL, "num_frames": 9}}, timeout=120)
        assert answer.json()["ok"] is True
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2  # the GIF's worker processes
        process.send_signal(getattr(signal, stop))
        process.wait(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], [child.cmdline() for child in alive]


def test_a_client_that_hangs_up_stops_its_video_reading(server, tmp_path):
    """Four requests whose video takes long to read (an honest 4K60 minute, read whole by `extend`,
    the decode budget raised for it), sent and hung up on: their ffmpeg processes end at once, and a
    request with a video right after them is served at once (it used to wait behind 20 s decodes
    that went on for nobody)."""
    from tests.video_endpoint.test_video_input import _four_k_minute

    clip = base64.b64encode(_four_k_minute(tmp_path)).decode()
    body = json.dumps({"inputs": {"prompt": "x", "extend": clip, **SMALL, "num_frames": 8}}).encode()
    port = int(server["url"].rsplit(":", 1)[1])
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", port)) as hostile:
            hostile.sendall(head + body)
            time.sleep(0.5)  # hangs up mid-read: the server has started its ffmpeg reader by then
    server_process = psutil.Process(server["pid"])

    def readers() -> list[psutil.Process]:
        found = []
        for child in server_process.children(recursive=True):
            with contextlib.suppress(psutil.ZombieProcess, psutil.NoSuchProcess):  # killed: not reading
                if "ffmpeg" in " ".join(child.cmdline()) and "rawvideo" in child.cmdline():
                    found.append(child)
        return found

    deadline = time.monotonic() + 10
    while readers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert readers() == []
    short = base64.b64encode(encoded_video(synthetic_clip(24, 64, 96), 24, "mp4")).decode()
    started = time.monotonic()
    answer = post(server, {"prompt": "after them", "video": short, **SMALL, "num_frames": 8})
    took = time.monotonic() - started
    assert answer.status_code == 200 and answer.json()["diagnostics"]["mode"] == "v2v"
    assert took < 10, took
    assert "client disconnected" in Path(server["log"]).read_text()


def test_small_contract_gaps(server):
    """q=0 means not wanted; a task shape's bad image is named `inputs`, where the client put it;
    a video may come as a data: URL like an image."""
    refused_mp4 = post(server, {"prompt": "waves", **SMALL, "num_frames": 9},
                       headers={**auth(), "Accept": "video/mp4;q=0, application/json"})
    assert refused_mp4.headers["content-type"] == "application/json" and refused_mp4.json()["ok"] is True
    bad_image = httpx.post(server["url"], json={"inputs": "iVBORw0KGgo" + "A" * 100, "parameters": {
        "prompt": "p", "num_frames": 9, "num_inference_steps": 2}}, headers=auth(), timeout=120)
    assert (bad_image.status_code, bad_image.json()["error"]["field"]) == (400, "inputs")
    clip = base64.b64encode(encoded_video(synthetic_clip(24, 64, 96), 24, "mp4")).decode()
    as_url = post(server, {"prompt": "v", "video": f"data:video/mp4;base64,{clip}", **SMALL, "num_frames": 8})
    assert as_url.status_code == 200 and as_url.json()["diagnostics"]["mode"] == "v2v"
