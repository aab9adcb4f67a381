"""Several local servers (real processes) sharing one real redis-server as their job store, as the
replicas of an autoscaled Endpoint do: killed, stopped, cancelled through each other, Redis away.

Short settings (a 2 s lease) keep it quick; it runs in one library generation (scripts/test.sh).
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import re
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from tests.conftest import RedisServer, serving
from tests.media import decode_video
from tests.video_endpoint.test_metrics import key, parsed

TOKEN = "replica-token-0123456789"
SECRET = "replica-webhook-secret"
LONG = {"prompt": "a long job", "height": 64, "width": 96, "num_frames": 9, "num_inference_steps": 400,
        "outputs": ["mp4"]}
SHORT = {"prompt": "a short job", "height": 64, "width": 96, "num_frames": 9, "num_inference_steps": 2,
         "outputs": ["mp4"]}
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


class Hooks(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []  # noqa: RUF012 (one receiver per module)
    request_ids: list[str | None] = []  # noqa: RUF012

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers["X-Video-Job-Id"], body))
        self.request_ids.append(self.headers.get("X-Request-Id"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hooks():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def redis_store(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replica_env(redis_store, hooks):
    return {"VIDEO_API_TOKEN": TOKEN, "VIDEO_JOB_STORE": redis_store.url, "VIDEO_JOB_LEASE_S": "2",
            "VIDEO_MAX_STEPS": "1000", "VIDEO_SHUTDOWN_GRACE_S": "0", "VIDEO_WEBHOOK_HOSTS": f"127.0.0.1:{hooks}",
            "VIDEO_WEBHOOK_SECRET": SECRET}


@contextlib.contextmanager
def replicas(count, tiny_model_dir, tmp_path, env):
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(serving(tiny_model_dir, tmp_path / f"replica-{n}.log", env)) for n in range(count)]


def submit(url: str, inputs: dict, **headers) -> dict:
    answer = httpx.post(f"{url}/jobs", json={"inputs": inputs}, headers={**HEADERS, **headers}, timeout=30)
    assert answer.status_code == 202, answer.text
    return answer.json()["job"]


def poll(url: str, job_id: str) -> dict:
    return httpx.get(f"{url}/jobs/{job_id}", headers=HEADERS, timeout=30).json()


def wait(url: str, job_id: str, until=lambda answer: answer["job"]["status"] in ("succeeded", "failed", "cancelled"),
         timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while not until(answer := poll(url, job_id)):
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    return answer


def running_on(servers, answer) -> int:
    """Which of `servers` (url, process) runs the job: its replica name carries the pid."""
    pid = int(answer["job"]["replica"].split("-")[-2])
    return next(i for i, (_, process) in enumerate(servers) if process.pid == pid)


def counted(url: str) -> dict:
    """The replica's /metrics (`test_metrics.parsed`)."""
    return parsed(httpx.get(f"{url}/metrics", headers=HEADERS, timeout=10).text)


def mp4_frames(answer: dict) -> np.ndarray:
    return np.stack(decode_video(base64.b64decode(answer["outputs"]["mp4_base64"])).frames)


def test_a_killed_replicas_job_is_finished_by_another_with_the_same_video(tiny_model_dir, tmp_path, replica_env):
    with replicas(2, tiny_model_dir, tmp_path, replica_env) as servers:
        job = submit(servers[0][0], LONG, **{"X-Request-Id": "trace-killed-1"})
        running = wait(servers[0][0], job["id"], until=lambda a: a["job"]["progress"]["step"] >= 5)
        victim = running_on(servers, running)
        servers[victim][1].send_signal(signal.SIGKILL)
        survivor = servers[1 - victim][0]
        ended = wait(survivor, job["id"])
        assert ended["job"]["status"] == "succeeded" and ended["job"]["attempt"] == 2, ended["job"]
        uninterrupted = httpx.post(survivor, json={"inputs": {**LONG, "seed": ended["diagnostics"]["seed"]}},
                                   headers=HEADERS, timeout=120).json()
        np.testing.assert_array_equal(mp4_frames(ended), mp4_frames(uninterrupted))
        assert mp4_frames(ended).shape == (9, 64, 96, 3)
        log = (tmp_path / f"replica-{1 - victim}.log").read_text()
        assert f"job {job['id']}: attempt 2" in log and f"job {job['id']}: succeeded" in log
        # the submitting request's id follows the job to the replica that finished it
        assert ended["job"]["request_id"] == ended["diagnostics"]["request_id"] == "trace-killed-1"
        job_lines = [line for line in log.splitlines() if f"job {job['id']}:" in line]
        assert job_lines and all("request trace-killed-1" in line for line in job_lines), job_lines
        survivor_counts = counted(survivor)
        assert survivor_counts[key("job_requeues_total")] == survivor_counts[key("job_attempts_total")] == 1


def test_cancel_and_events_through_the_replica_not_running_the_job(tiny_model_dir, tmp_path, replica_env):
    with replicas(2, tiny_model_dir, tmp_path, replica_env) as servers:
        job = submit(servers[0][0], LONG)
        running = wait(servers[0][0], job["id"], until=lambda a: a["job"]["progress"]["step"] >= 2)
        other = servers[1 - running_on(servers, running)][0]
        events: list[tuple[str, dict]] = []
        with httpx.stream("GET", f"{other}/jobs/{job['id']}/events", headers=HEADERS, timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line.removeprefix("data: "))))
                    if kind == "progress" and len(events) == 3:
                        cancelled = httpx.delete(f"{other}/jobs/{job['id']}", headers=HEADERS, timeout=30).json()
                        assert cancelled["job"]["cancel_requested"] is True
                        asked_at = cancelled["job"]["progress"]["step"]
        steps = [change["progress"]["step"] for kind, change in events if kind == "progress"]
        assert steps == sorted(steps) and len(steps) >= 3
        kind, final = events[-1]
        assert kind == "result" and final["job"]["status"] == "cancelled" and final["error"]["type"] == "cancelled"
        assert final["job"]["progress"]["step"] < 400 and final["job"]["progress"]["step"] <= asked_at + 5


def test_six_jobs_over_two_replicas_each_webhook_once_and_idempotent_submission(tiny_model_dir, tmp_path,
                                                                                 replica_env, hooks):
    Hooks.received.clear()
    Hooks.request_ids.clear()
    with replicas(2, tiny_model_dir, tmp_path, replica_env) as servers:
        ids = [submit(servers[n % 2][0], {**SHORT, "seed": n, "webhook": f"http://127.0.0.1:{hooks}/done"},
                      **{"X-Request-Id": f"trace-{n}"})["id"] for n in range(6)]
        again = submit(servers[1][0], {**SHORT, "seed": 9}, **{"Idempotency-Key": "order-1"})
        assert submit(servers[0][0], {**SHORT, "seed": 9}, **{"Idempotency-Key": "order-1"})["id"] == again["id"]
        refused = httpx.post(f"{servers[0][0]}/jobs", json={"inputs": {**SHORT, "seed": 10}},
                             headers={**HEADERS, "Idempotency-Key": "order-1"}, timeout=30)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == "idempotency_key"
        finals = {job_id: wait(servers[n % 2][0], job_id) for n, job_id in enumerate(ids)}
        assert all(answer["job"]["status"] == "succeeded" for answer in finals.values())
        ran_on = set()
        for n in range(2):
            log = (tmp_path / f"replica-{n}.log").read_text()
            ran_on |= {n for job_id in ids if f"job {job_id}: succeeded" in log}
        deadline = time.monotonic() + 30
        while len(Hooks.received) < 6:
            assert time.monotonic() < deadline, Hooks.received
            time.sleep(0.1)
        time.sleep(1)  # a duplicate would arrive within this: "none came" needs time to pass
        counts = [counted(url) for url, _ in servers]
        assert sum(c[key("webhook_deliveries_total", outcome="delivered")] for c in counts) == 6
        assert sum(c[key("webhook_deliveries_total", outcome="failed")] for c in counts) == 0
        assert sum(c[key("job_attempts_total")] for c in counts) == 7  # six and the idempotent one
    assert sorted(job_id for job_id, _ in Hooks.received) == sorted(ids)  # each exactly once
    assert all(json.loads(body) == finals[job_id] for job_id, body in Hooks.received)
    # each webhook names the request that submitted its job, whichever replica sent it
    delivered = zip((job_id for job_id, _ in Hooks.received), Hooks.request_ids, strict=True)
    assert set(delivered) == {(job_id, f"trace-{n}") for n, job_id in enumerate(ids)}
    assert ran_on == {0, 1}  # both replicas ran jobs


def test_sigterm_on_every_replica_hands_the_jobs_to_the_next_one(tiny_model_dir, tmp_path, replica_env):
    with replicas(2, tiny_model_dir, tmp_path, replica_env) as servers:
        running = submit(servers[0][0], LONG)
        wait(servers[0][0], running["id"], until=lambda a: a["job"]["progress"]["step"] >= 2)
        queued = [submit(servers[1][0], {**SHORT, "seed": n})["id"] for n in range(3)]
        for _, process in servers:
            process.send_signal(signal.SIGTERM)
        for _, process in servers:
            process.wait(timeout=30)
    (tmp_path / "later").mkdir()
    with replicas(1, tiny_model_dir, tmp_path / "later", replica_env) as [(url, _)]:
        ended = [wait(url, job_id) for job_id in [running["id"], *queued]]
    assert all(answer["job"]["status"] == "succeeded" for answer in ended), [a["job"] for a in ended]
    log = "".join((tmp_path / f"replica-{n}.log").read_text() for n in range(2))
    assert f"job {running['id']}: this replica is stopping and it needs" in log  # handed back, not left to its lease


def test_redis_away_and_back(tiny_model_dir, tmp_path, replica_env, redis_store):
    with replicas(1, tiny_model_dir, tmp_path, replica_env) as ((url, _),):
        done = wait(url, submit(url, SHORT)["id"])
        before = counted(url)  # the store's counts, from Redis
        assert before[key("jobs", status="finished")] >= 1 and before[key("jobs", status="running")] == 0
        assert before[key("queue_waiting", kind="job")] == 0
        redis_store.stop()
        started = time.monotonic()
        refused = httpx.post(f"{url}/jobs", json={"inputs": SHORT}, headers=HEADERS, timeout=30)
        lost = httpx.get(f"{url}/jobs/{done['job']['id']}", headers=HEADERS, timeout=30)
        assert time.monotonic() - started < 10
        for answer in (refused, lost):
            assert answer.status_code == 503 and answer.json()["error"]["type"] == "unavailable", answer.text
            assert "job store" in answer.json()["error"]["message"]
        synchronous = httpx.post(url, json={"inputs": SHORT}, headers=HEADERS, timeout=60)
        assert synchronous.status_code == 200 and mp4_frames(synchronous.json()).shape == (9, 64, 96, 3)
        health = httpx.get(f"{url}/health", headers=HEADERS, timeout=30).json()
        assert health["jobs"]["store"] == "redis" and health["jobs"]["reachable"] is False
        away = counted(url)  # the store's counts are missing, not 0; its errors are counted
        assert not any(name.endswith("_jobs") for name, _ in away) and key("queue_waiting", kind="job") not in away
        assert away[key("job_store_errors_total")] >= 2
        assert away[key("requests_total", kind="job", outcome="unavailable", mode="none")] == 1
        redis_store.start()
        assert wait(url, submit(url, SHORT)["id"])["job"]["status"] == "succeeded"
        assert httpx.get(f"{url}/health", headers=HEADERS, timeout=30).json()["jobs"]["reachable"] is True


def test_openai_videos_across_two_replicas(tiny_model_dir, tmp_path, replica_env, redis_store):
    """OpenAI's SDK pointed at two replicas: a video made on one is polled, downloaded, listed,
    remixed and deleted through the other; with Redis away, creating answers 503."""
    import openai

    small = {"size": "96x64", "seconds": "1"}
    with replicas(2, tiny_model_dir, tmp_path, replica_env) as servers:
        first, second = (openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN) for url, _ in servers)
        video = first.videos.create(prompt="a boat", **small, extra_body={"num_inference_steps": 2, "seed": 3})
        done = second.videos.poll(video.id)
        assert done.status == "completed" and done.model_extra["seed"] == 3 and done.seconds == "1"
        frames = decode_video(second.videos.download_content(video.id).read()).frames
        assert frames.shape == (12, 64, 96, 3)
        assert first.videos.download_content(video.id, variant="thumbnail").read()[8:12] == b"WEBP"
        assert video.id in [listed.id for listed in second.videos.list(limit=100).data]
        again = first.videos.create(prompt="a boat", **small, extra_body={"num_inference_steps": 2, "seed": 3},
                                    extra_headers={"Idempotency-Key": "boat-1"})
        assert second.videos.create(prompt="a boat", **small, extra_body={"num_inference_steps": 2, "seed": 3},
                                    extra_headers={"Idempotency-Key": "boat-1"}).id == again.id
        remix = first.videos.poll(second.videos.remix(video.id, prompt="a ship").id)
        assert remix.status == "completed" and remix.remixed_from_video_id == video.id

        long = first.videos.create(prompt="long", **small, extra_body={"num_inference_steps": 400})
        deadline = time.monotonic() + 60
        while second.videos.retrieve(long.id).progress < 5:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert second.videos.delete(long.id).deleted is True
        with pytest.raises(openai.NotFoundError):
            first.videos.retrieve(long.id)
        started = time.monotonic()
        assert first.videos.create_and_poll(prompt="next", **small, extra_body={"num_inference_steps": 2}).status == (
            "completed")
        assert time.monotonic() - started < 30  # not behind the 400 steps
        logs = "".join((tmp_path / f"replica-{n}.log").read_text() for n in range(2))
        steps = [int(step) for step in re.findall(rf"job {long.id.removeprefix('video_')}: step (\d+)/400", logs)]
        assert steps and max(steps) < 400

        redis_store.stop()
        try:
            with pytest.raises(openai.InternalServerError) as away:
                first.with_options(max_retries=0).videos.create(prompt="x", **small)
            assert away.value.status_code == 503 and away.value.body["code"] == "unavailable"
        finally:
            redis_store.start()
