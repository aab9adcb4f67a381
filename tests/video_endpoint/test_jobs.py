"""Jobs through the `{"inputs": ...}` body: submit, poll, cancel, expiry, the queue's bound, webhooks."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import typing

import numpy as np
import pytest
from prometheus_client import REGISTRY

from handler import EndpointHandler
from tests.conftest import REPORT
from tests.media import zip_frames
from tests.waiting import wait_until
from video_endpoint import webhooks
from video_endpoint.errors import NotFound
from video_endpoint.jobs import InProcessJobStore, JobSettings
from video_endpoint.scheduler import Scheduler
from video_endpoint.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSender, verify_signature

SMALL = {"prompt": "a red balloon", "height": 64, "width": 96, "num_frames": 9, "num_inference_steps": 4,
         "seed": 4, "outputs": ["zip"]}
SECRET = "webhook-secret-0123"


@pytest.fixture(scope="module")
def handler(tiny_model_dir):
    return EndpointHandler(str(tiny_model_dir))


def with_jobs(handler, **config) -> EndpointHandler:
    """`handler` with a fresh job store and scheduler of this configuration."""
    handler.open_jobs(JobSettings(**config))
    return handler


def submit(handler, **change) -> dict:
    return handler({"inputs": {**SMALL, **change, "async": True}})


def wait(handler, job_id: str, until=lambda job: job["status"] in ("succeeded", "failed", "cancelled"),
         timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = handler({"inputs": {"job_id": job_id}})
        if until(answer["job"]):
            return answer
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {answer}")


def test_an_async_result_equals_the_synchronous_one(handler):
    with_jobs(handler)
    submitted = submit(handler, num_inference_steps=12)
    assert submitted["ok"] is True and submitted["job"]["status"] == "queued" and submitted["job"]["position"] == 1
    assert len(submitted["job"]["id"]) >= 22  # unguessable: 18 random bytes
    steps = []
    answer = wait(handler, submitted["job"]["id"], until=lambda job: steps.append(job["progress"]["step"]) or
                  job["status"] == "succeeded")
    assert steps == sorted(steps) and answer["job"]["progress"] == {"step": 12, "total": 12}
    assert answer["job"]["position"] is None and answer["job"]["elapsed_s"] > 0
    synchronous = handler({"inputs": {**SMALL, "num_inference_steps": 12}})
    np.testing.assert_array_equal(zip_frames(answer), zip_frames(synchronous))
    assert answer["diagnostics"]["seed"] == synchronous["diagnostics"]["seed"] == 4
    assert wait(handler, submitted["job"]["id"]) == answer  # kept: polled again, the same answer
    # without a server, each call gets a request id of its own; a job keeps its submission's
    assert re.fullmatch(r"[0-9a-f]{16}", synchronous["diagnostics"]["request_id"])
    assert answer["job"]["request_id"] == answer["diagnostics"]["request_id"] == submitted["job"]["request_id"]
    assert answer["diagnostics"]["request_id"] != synchronous["diagnostics"]["request_id"]


def test_cancelling_a_running_job_stops_it_within_one_step(handler):
    with_jobs(handler)
    baseline = zip_frames(handler({"inputs": SMALL}))
    job_id = submit(handler, num_inference_steps=100)["job"]["id"]
    running = wait(handler, job_id, until=lambda job: job["progress"]["step"] >= 2)
    assert running["job"]["status"] == "running" and running["job"]["eta_s"] is not None
    cancelling = handler({"inputs": {"job_id": job_id, "cancel": True}})
    asked_at = cancelling["job"]["progress"]["step"]
    ended = wait(handler, job_id)
    assert ended["job"]["status"] == "cancelled" and ended["error"]["type"] == "cancelled"
    assert ended["job"]["progress"]["step"] <= asked_at + 1 < 100
    np.testing.assert_array_equal(zip_frames(handler({"inputs": SMALL})), baseline)  # the model is free and right


def test_a_cancelled_queued_job_never_starts(handler):
    with_jobs(handler)
    first = submit(handler, num_inference_steps=100)["job"]["id"]
    wait(handler, first, until=lambda job: job["status"] == "running")
    second = submit(handler)["job"]
    assert second["position"] == 1  # next after the running one
    cancelled = handler({"inputs": {"job_id": second["id"], "cancel": True}})
    assert cancelled["job"]["status"] == "cancelled" and cancelled["job"]["progress"]["step"] == 0
    handler({"inputs": {"job_id": first, "cancel": True}})
    assert wait(handler, first)["job"]["status"] == "cancelled"
    assert wait(handler, second["id"])["job"]["progress"] == {"step": 0, "total": None}


def test_twenty_fast_submissions_are_all_accounted_for(handler):
    with_jobs(handler, max_queued=5)
    answers = [submit(handler, seed=i) for i in range(20)]
    accepted = [a["job"]["id"] for a in answers if a["ok"]]
    busy = [a for a in answers if not a["ok"]]
    assert len(accepted) + len(busy) == 20 and 5 <= len(accepted) < 20
    assert all(a["error"]["type"] == "busy" and "VIDEO_MAX_QUEUED" in a["error"]["message"] for a in busy)
    finished = [wait(handler, job_id) for job_id in accepted]
    assert all(a["job"]["status"] == "succeeded" for a in finished)
    assert len({a["diagnostics"]["seed"] for a in finished}) == len(accepted)  # each its own request


def test_results_expire_and_stay_under_the_byte_cap(handler):
    one = submit(with_jobs(handler))["job"]["id"]
    wait(handler, one)
    size = len(handler.jobs.jobs[one].answer)  # one answer as kept (about the same for every seed)
    with_jobs(handler, max_bytes=int(2.5 * size))
    ids = [submit(handler, seed=i)["job"]["id"] for i in range(4)]
    deadline = time.monotonic() + 60
    while any(job.status in ("queued", "running") for job in handler.jobs.jobs.values()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    kept = [job_id for job_id in ids if handler({"inputs": {"job_id": job_id}})["ok"]]
    assert kept == ids[-2:]  # the oldest went first
    assert sum(len(job.answer) for job in handler.jobs.jobs.values()) <= 2.5 * size
    gone = handler({"inputs": {"job_id": ids[0]}})
    assert gone["ok"] is False and gone["error"]["field"] == "job_id"
    with_jobs(handler, ttl_s=0.2)
    job_id = submit(handler)["job"]["id"]
    wait(handler, job_id)
    gone = wait_until(lambda: not (answer := handler({"inputs": {"job_id": job_id}}))["ok"] and answer,
                      "the job to expire (VIDEO_JOB_TTL_S 0.2 s)", timeout_s=5)
    assert gone["error"]["field"] == "job_id"


def test_job_protocol_mistakes_answer_with_the_field(handler):
    with_jobs(handler)
    cases = [
        ({"job_id": "no-such-job"}, "job_id", "unknown or expired"),
        ({"job_id": 12}, "job_id", "unknown or expired"),
        ({"job_id": "x", "prompt": "p"}, "prompt", "only job_id"),
        ({"job_id": "x", "<b>" + "k" * 100: 1}, "?b?" + "k" * 37 + "...", "only job_id"),  # names shown safely
        ({"job_id": "x", "cancel": "yes"}, "cancel", "true or false"),
        ({**SMALL, "async": "yes"}, "async", "true or false"),
        ({**SMALL, "cancel": True}, "cancel", "needs the job_id"),
        ({**SMALL, "webhook": "http://127.0.0.1/x"}, "webhook", "\"async\": true"),
        ({**SMALL, "height": 100, "async": True}, "height", "multiple of 32"),  # refused, not queued
        ({**SMALL, "async": True, "webhook": "http://127.0.0.1/x"}, "webhook", "webhooks are off"),
    ]
    for inputs, field, message in cases:
        answer = handler({"inputs": inputs})
        assert answer["ok"] is False and answer["error"]["field"] == field, (inputs, answer)
        assert message in answer["error"]["message"], (inputs, answer)
    assert not handler.jobs.jobs  # nothing was queued
    assert handler({"inputs": {**SMALL, "async": False}})["ok"] is True  # async false: answered now


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: typing.ClassVar[list] = []
    delay_s: typing.ClassVar[float] = 0.0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), body))
        time.sleep(self.delay_s)
        if self.path == "/redirect":
            self.send_response(307)
            self.send_header("Location", "/hook")
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    server.shutdown()


def test_webhook_gets_the_signed_final_answer_only_on_listed_hosts(handler, receiver):
    url, received = receiver
    with_jobs(handler, webhook_hosts=(url.removeprefix("http://"),), webhook_secret=SECRET)
    job_id = submit(handler, webhook=f"{url}/hook")["job"]["id"]
    final = wait(handler, job_id)
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    [(path, headers, body)] = received
    assert path == "/hook" and headers["X-Video-Job-Id"] == job_id
    assert verify_signature(body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], SECRET)
    assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) < 30
    assert json.loads(body) == final  # the answer a poll gives
    # the signature covers the timestamp: a replay past the window, or with another time, fails
    later = int(headers[TIMESTAMP_HEADER]) + 301
    assert not verify_signature(body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], SECRET, now=later)
    assert not verify_signature(body, headers[SIGNATURE_HEADER], str(later), SECRET, now=later)
    assert not verify_signature(body + b" ", headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], SECRET)
    for elsewhere in ("http://localhost/hook", "http://10.0.0.1/hook",
                      "http://127.0.0.1/hook", "http://127.0.0.1:22/",  # the listed host, not its listed port
                      "file:///etc/passwd", "http://127.0.0.2/x",
                      "ftp://127.0.0.1/x", "http://127.0.0.1:notaport/x",
                      # userinfo: checked as 127.0.0.1, but urllib connected to "evil@127.0.0.1"
                      f"http://evil@{url.removeprefix('http://')}/hook", f"http://u:p@{url.removeprefix('http://')}/x",
                      f"{url}/hook\r\nX-Injected: 1", f"{url}/hook x"):
        refused = submit(handler, webhook=elsewhere)
        assert refused["ok"] is False and refused["error"]["field"] == "webhook", (elsewhere, refused)
    received.clear()
    sent = deliveries()
    wait(handler, submit(handler, webhook=f"{url}/redirect")["job"]["id"])
    wait_until(lambda: deliveries() == sent + 1, "the delivery to end")
    assert [path for path, _, _ in received] == ["/redirect"]  # a redirect is not followed


def test_a_slow_receiver_gets_the_webhook_once(handler, receiver, monkeypatch):
    """Once the body is sent, a receiver slower than the timeout has it: it is not sent again (it
    used to arrive three times)."""
    url, received = receiver
    monkeypatch.setattr(webhooks, "WEBHOOK_TIMEOUT_S", 0.5)
    monkeypatch.setattr(_Receiver, "delay_s", 1.5)
    with_jobs(handler, webhook_hosts=(url.removeprefix("http://"),), webhook_secret=SECRET)
    sent = deliveries()
    wait(handler, submit(handler, webhook=f"{url}/hook")["job"]["id"])
    wait_until(lambda: deliveries() == sent + 1, "the delivery to end, retries included")
    assert [path for path, _, _ in received] == ["/hook"]


def deliveries() -> float:
    """Webhook deliveries ended in this process, delivered or given up (the sender counts each once)."""
    return sum(REGISTRY.get_sample_value("video_endpoint_webhook_deliveries_total", {"outcome": outcome}) or 0.0
               for outcome in ("delivered", "failed"))


def test_async_with_raw_bytes_is_refused_at_submission(handler):
    """A job's answer is JSON: `return_base64: false` with `async: true` used to be accepted, and
    every poll of it failed with a traceback for the job's whole lifetime."""
    with_jobs(handler)
    refused = submit(handler, return_base64=False)
    assert refused["ok"] is False and refused["error"]["field"] == "return_base64"
    assert not handler.jobs.jobs
    raw = handler({"inputs": {**SMALL, "return_base64": False, "async": False}})  # synchronous: raw bytes
    assert raw["ok"] is True and isinstance(raw["outputs"]["zip"], bytes)


def test_an_answer_over_the_byte_cap_fails_and_evicts_nothing(handler):
    """An answer larger than VIDEO_JOB_MAX_BYTES used to evict itself and every older job as it
    finished: its poll said "unknown or expired job id"."""
    probe = submit(with_jobs(handler))["job"]["id"]
    wait(handler, probe)
    size = len(handler.jobs.jobs[probe].answer)
    with_jobs(handler, max_bytes=3 * size)
    small = submit(handler)["job"]["id"]
    wait(handler, small)
    large = submit(handler, height=256, width=256, num_frames=17)["job"]["id"]
    ended = wait(handler, large)
    assert ended["job"]["status"] == "failed" and ended["error"]["field"] == "outputs"
    assert "VIDEO_JOB_MAX_BYTES" in ended["error"]["message"]
    kept = handler({"inputs": {"job_id": small}})
    assert kept["job"]["status"] == "succeeded" and zip_frames(kept).shape == (9, 64, 96, 3)


def trivial_store(**config) -> InProcessJobStore:
    """A store whose jobs are taken and finished at once: the store's own costs, without a model."""
    return InProcessJobStore(JobSettings(**config))


def fill(store: InProcessJobStore, count: int) -> None:
    for _ in range(count):
        store.submit({}, None)
        store.finish(store.take(), {"ok": True, "outputs": {}, "diagnostics": {}})


def test_kept_jobs_are_bounded_in_count_and_looked_up_not_scanned():
    """Every job operation used to scan all kept jobs under the queue's lock (6.9 ms per poll at
    20k kept jobs, ~50x the time at 1k); and the byte cap alone admitted ~262k tiny answers."""
    store = trivial_store(max_kept=50, max_queued=10_000)
    fill(store, 300)
    assert len(store.jobs) == len(store.finished) == 50
    timings = {}
    for kept in (1_000, 20_000):
        store = trivial_store(max_kept=kept, max_queued=100_000)
        fill(store, kept)
        job_id = next(iter(store.jobs))
        started = time.perf_counter()
        for _ in range(2000):
            store.status_json(job_id)
        timings[kept] = (time.perf_counter() - started) / 2000
    REPORT.append(f"job poll with 1k / 20k kept jobs: {timings[1_000] * 1e6:.1f} / {timings[20_000] * 1e6:.1f} us")
    assert timings[20_000] < 5 * timings[1_000]  # a scan made it ~20x


class StandIn:
    """The scheduler's side of a handler, with `generate_frames` given: the scheduler alone."""

    def __init__(self, generate_frames) -> None:
        self.generate_frames = generate_frames

    @staticmethod
    def deliver(produced):
        return produced.result


def scheduled(generate_frames) -> tuple[Scheduler, InProcessJobStore]:
    store = InProcessJobStore(JobSettings())
    return Scheduler(StandIn(generate_frames), store, WebhookSender((), "")), store


def until_ended(store: InProcessJobStore, *job_ids: str) -> None:
    deadline = time.monotonic() + 10
    while any(store.jobs[job_id].answer is None for job_id in job_ids):
        assert time.monotonic() < deadline, [store.jobs[j].status for j in job_ids]
        time.sleep(0.01)


def poll(store: InProcessJobStore, job_id: str) -> dict:
    return json.loads(store.status_json(job_id))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_is_replaced_and_its_job_ends():
    """A worker killed by something the handler cannot catch used to leave its job `running` and
    every later job `queued` forever, while new ones were still accepted."""
    from video_endpoint.stages import Produced

    calls = []

    def generate_frames(decoded, on_step):
        calls.append(decoded)
        if len(calls) == 1:
            raise SystemExit  # ends a thread without a word
        return lambda: Produced({"ok": True, "outputs": {}, "diagnostics": {}})

    _scheduler, store = scheduled(generate_frames)  # the store wakes it
    first, second = (store.submit({"n": n}, None)["job"]["id"] for n in (1, 2))
    until_ended(store, first, second)
    assert poll(store, first)["error"]["type"] == "internal"
    assert poll(store, second)["job"]["status"] == "succeeded"
    third = store.submit({"n": 3}, None)["job"]["id"]
    until_ended(store, third)
    assert poll(store, third)["job"]["status"] == "succeeded"


def test_a_cancel_after_the_last_step_says_the_answer_was_kept():
    """A cancel that arrived while the answer was being encoded used to end `succeeded` with no word."""
    from video_endpoint.stages import Produced

    encoding, cancelled = threading.Event(), threading.Event()

    def generate_frames(decoded, on_step):
        on_step(1, 1)

        def encode():
            encoding.set()
            cancelled.wait(10)
            return Produced({"ok": True, "outputs": {"gif_base64": "R0lG"}, "diagnostics": {}})

        return encode

    _scheduler, store = scheduled(generate_frames)  # the store wakes it
    job_id = store.submit({}, None)["job"]["id"]
    assert encoding.wait(10)
    assert json.loads(store.status_json(job_id, cancel=True))["job"]["cancel_requested"] is True
    cancelled.set()
    until_ended(store, job_id)
    ended = poll(store, job_id)
    assert ended["job"]["status"] == "succeeded" and ended["outputs"] == {"gif_base64": "R0lG"}
    assert ended["job"]["cancel_requested"] is True and "after the last step" in ended["job"]["note"]


def test_a_conditioned_job_is_decoded_once_at_submission_and_equals_the_synchronous_answer(handler, monkeypatch):
    from tests.media import synthetic_clip, video_base64
    from video_endpoint import stages

    with_jobs(handler)
    clip = video_base64(synthetic_clip(12, 64, 96), 12)
    reads = []
    read_video = stages.read_video
    monkeypatch.setattr(stages, "read_video", lambda *a, **k: reads.append(a[1]) or read_video(*a, **k))
    submitted = submit(handler, extend=clip)
    assert submitted["ok"] is True and reads == ["extend"]  # read (and refusable) before it is queued
    answer = wait(handler, submitted["job"]["id"])
    assert answer["job"]["status"] == "succeeded" and reads == ["extend"]  # the worker used what was read
    synchronous = handler({"inputs": {**SMALL, "extend": clip}})
    np.testing.assert_array_equal(zip_frames(answer), zip_frames(synchronous))
    assert answer["diagnostics"]["mode"] == "extend"
    refused = submit(handler, video=video_base64(synthetic_clip(12, 64, 96), 12)[:200])
    assert (refused["ok"], refused["error"]["field"]) == (False, "video")


def test_waiting_jobs_hold_at_most_their_budget_of_decoded_input(handler):
    """Each queued job keeps its decoded video frames (a 13 KB video made 0.6 GB a job): together,
    the waiting jobs' decoded inputs stay within VIDEO_JOB_MAX_INPUT_BYTES."""
    from tests.conftest import jpeg_base64

    image = jpeg_base64()
    one = 4 * 64 * 96  # the image, fitted to 96x64, as Pillow holds it
    with_jobs(handler, max_held_bytes=3 * one)
    answers = [submit(handler, image=image, seed=i, num_frames=33) for i in range(8)]
    busy = [a for a in answers if not a["ok"]]
    assert busy and all(a["error"]["type"] == "busy" and "VIDEO_JOB_MAX_INPUT_BYTES" in a["error"]["message"]
                        for a in busy)
    assert sum(job.held_bytes for job in handler.jobs.waiting) <= 3 * one
    accepted = [a["job"]["id"] for a in answers if a["ok"]]
    assert all(wait(handler, job_id)["job"]["status"] == "succeeded" for job_id in accepted)
    again = submit(handler, image=image)
    assert again["ok"], again  # the budget is free again
    wait(handler, again["job"]["id"])


def listing_and_deleting(store) -> None:
    """What the /v1/videos routes ask of any store: jobs with `meta` show it and are listed in
    submission order, in pages; a deleted job is unknown at once, queued or running (its runner
    is told to stop, its end is not recorded) or finished (its answer's bytes are freed)."""
    plain = store.submit({"n": 0}, None)["job"]["id"]  # no meta: not listed
    ids = [store.submit({"n": n}, None, meta={"n": n}, kept={"prompt": "p" * 1000})["job"]["id"] for n in range(1, 4)]
    assert json.loads(store.status_json(ids[0]))["job"]["meta"] == {"n": 1}
    assert "meta" not in json.loads(store.status_json(plain))["job"]
    assert b"ppp" not in store.status_json(ids[0])  # kept, not shown
    assert store.kept(ids[0]) == {"prompt": "p" * 1000} and store.kept(plain) is None
    page, more = store.listed(None, 2, True)
    assert [json.loads(body)["job"]["id"] for body in page] == [ids[2], ids[1]] and more
    page, more = store.listed(ids[1], 2, True)
    assert [json.loads(body)["job"]["id"] for body in page] == [ids[0]] and not more
    page, _ = store.listed(None, 10, False)
    assert [json.loads(body)["job"]["meta"]["n"] for body in page] == [1, 2, 3]
    with pytest.raises(NotFound):
        store.listed("no-such-job", 2, True)

    running = store.take()
    assert running.id == plain
    store.delete(ids[1])  # queued: never runs
    store.delete(plain)  # running: stops at its next step, its end is not recorded
    for gone in (ids[1], plain):
        with pytest.raises(NotFound):
            store.status_json(gone)
        with pytest.raises(NotFound):
            store.delete(gone)
    assert store.progress(running, 1, 4) is True
    assert store.finish(running, {"ok": True, "outputs": {}, "diagnostics": {}}) is None
    following = store.take()
    assert following.id == ids[0]  # the deleted queued one was skipped
    assert store.finish(following, {"ok": True, "outputs": {"zip_base64": "UEsFBg=="}, "diagnostics": {}})
    assert store.kept(ids[0]) == {"prompt": "p" * 1000}  # as long as the job
    store.delete(ids[0])  # finished: its answer is gone
    page, _ = store.listed(None, 10, True)
    assert [json.loads(body)["job"]["id"] for body in page] == [ids[2]]


def test_listing_and_deleting_in_memory():
    store = trivial_store()
    listing_and_deleting(store)
    assert store.finished_bytes == 0  # the answer and the kept request counted, and freed


def test_a_kept_request_counts_against_the_byte_budget():
    store = trivial_store(max_bytes=5000)
    first = store.submit({}, None, meta={}, kept={"image": "x" * 3000})["job"]["id"]
    store.finish(store.take(), {"ok": True, "outputs": {}, "diagnostics": {}})
    assert store.finished_bytes > 3000
    store.submit({}, None, meta={}, kept={"image": "y" * 3000})
    store.finish(store.take(), {"ok": True, "outputs": {}, "diagnostics": {}})
    with pytest.raises(NotFound):  # the oldest went to make room
        store.status_json(first)
