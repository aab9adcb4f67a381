"""The Redis job store on a real redis-server: several stores on one Redis are several replicas."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.conftest import SMALL
from tests.media import zip_frames
from tests.video_endpoint.test_jobs import listing_and_deleting
from tests.waiting import wait_until
from video_endpoint.errors import InvalidRequest, Unavailable
from video_endpoint.jobs import Idempotency, JobSettings
from video_endpoint.redis_jobs import RedisJobStore

OK = {"ok": True, "outputs": {"zip_base64": "UEsFBg=="}, "diagnostics": {"seed": 1}}


def replica(redis_server, **config) -> RedisJobStore:
    return RedisJobStore(JobSettings(store=redis_server.url, **{"lease_s": 1.0, **config}))


def poll(store: RedisJobStore, job_id: str, cancel: bool = False) -> dict:
    return json.loads(store.status_json(job_id, cancel=cancel))


def test_any_replica_polls_a_job_another_runs_and_its_steps_stream(redis_server):
    one, two = replica(redis_server), replica(redis_server)
    job_id = one.submit({"inputs": {"prompt": "p"}}, None)["job"]["id"]
    assert poll(two, job_id)["job"] | {"elapsed_s": 0} == {
        "id": job_id, "status": "queued", "progress": {"step": 0, "total": None}, "position": 1, "elapsed_s": 0,
        "eta_s": None, "request_id": "", "attempt": 0}
    claimed = two.take()
    assert claimed.id == job_id and claimed.attempt == 1 and claimed.payload == {"inputs": {"prompt": "p"}}
    assert one.take() is None  # taken once
    assert two.progress(claimed, 1, 4) is False
    running = poll(one, job_id)["job"]
    assert (running["status"], running["progress"], running["replica"]) == ("running", {"step": 1, "total": 4},
                                                                            two.replica)
    body = two.finish(claimed, OK)
    assert one.status_json(job_id) == body
    changes, ended = one.events(job_id, 0)
    assert ended and [(c["status"], c["progress"]["step"]) for c in changes] == [("running", 0), ("running", 1)]
    assert json.loads(body)["outputs"] == OK["outputs"] and json.loads(body)["job"]["status"] == "succeeded"


def test_a_dead_replicas_job_is_run_again_and_only_the_last_attempt_is_recorded(redis_server):
    dead, alive = replica(redis_server), replica(redis_server)
    job_id = dead.submit({"n": 1}, None)["job"]["id"]
    first = dead.take()
    dead.close()  # its heartbeat stops, as a killed process's does
    assert alive.take() is None  # within the lease the job is still the dead one's
    second = wait_until(alive.take, "the dead replica's lease to pass")
    assert (second.id, second.attempt, second.payload) == (job_id, 2, {"n": 1})
    assert dead.progress(first, 2, 4) is True  # the old attempt is told to stop
    assert dead.finish(first, {"ok": False, "error": {"type": "internal", "field": None, "message": "x"}}) is None
    assert poll(alive, job_id)["job"]["status"] == "running"  # the stale end changed nothing
    assert alive.finish(second, OK) is not None
    assert poll(dead, job_id)["job"]["status"] == "succeeded" and poll(dead, job_id)["job"]["attempt"] == 2


def test_a_job_whose_replicas_keep_dying_fails_after_the_attempts(redis_server):
    submitter = replica(redis_server, max_attempts=2)
    job_id = submitter.submit({}, None)["job"]["id"]
    for _ in range(2):
        dying = replica(redis_server, max_attempts=2)
        assert wait_until(dying.take, "the job, once the last replica's lease has passed").id == job_id
        dying.close()
    last = replica(redis_server, max_attempts=2)
    ended = wait_until(lambda: last.take() is None and poll(submitter, job_id)["job"]["status"] == "failed"
                       and poll(submitter, job_id), "the job to fail once its second lease has passed")
    assert ended["job"]["status"] == "failed" and ended["error"]["type"] == "internal"
    assert "started 2 times" in ended["error"]["message"] and "VIDEO_JOB_MAX_ATTEMPTS" in ended["error"]["message"]


def test_a_handed_back_job_is_taken_at_once_without_using_an_attempt(redis_server):
    stopping, other = (replica(redis_server, lease_s=30, max_attempts=1) for _ in range(2))
    job_id = stopping.submit({}, None)["job"]["id"]
    claimed = stopping.take()
    stopping.hand_back(claimed)
    assert poll(other, job_id)["job"]["status"] == "queued"
    again = other.take()  # at once (no lease to wait out), and the one attempt allowed is still there
    assert (again.id, again.attempt) == (job_id, 2)
    assert stopping.progress(claimed, 1, 2) is True  # the stopping replica's run is told to stop
    assert stopping.finish(claimed, OK) is None and other.finish(again, OK) is not None


def test_a_webhook_the_recording_replica_did_not_send_is_sent_by_another(redis_server):
    """At least once, always: a replica that records a job's end and dies before its webhook is
    sent leaves it pending; once the delivery's lease passes, another replica sends it (once)."""
    dying, alive = replica(redis_server), replica(redis_server)
    sent: list[tuple[str, str, bytes, str]] = []
    alive.orphan_webhook = lambda url, job_id, body, request_id: sent.append((url, job_id, body, request_id))
    delivered = dying.submit({}, "http://127.0.0.1:9/hook")["job"]["id"]
    dying.webhook_sent(dying.finish(dying.take(), OK) and delivered)  # sent: nothing left pending
    orphaned = dying.submit({}, "http://127.0.0.1:9/hook", request_id="trace-orphan")["job"]["id"]
    body = dying.finish(dying.take(), OK)
    dying.close()  # dies while delivering: its delivery's lease is no longer extended
    deadline = time.monotonic() + 10
    while not sent:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.5)  # more than a lease: the one replica sending it keeps it
    assert sent == [("http://127.0.0.1:9/hook", orphaned, body, "trace-orphan")]  # the submitting request's id
    alive.webhook_sent(orphaned)
    assert redis_server.client().zcard("video-endpoint:webhooks") == 0


def test_cancel_through_another_replica(redis_server):
    one, two = replica(redis_server), replica(redis_server)
    queued = one.submit({}, None)["job"]["id"]
    assert poll(two, queued, cancel=True)["job"]["status"] == "cancelled"
    assert one.take() is None  # a cancelled job never starts
    running = one.submit({}, None)["job"]["id"]
    claimed = one.take()
    assert poll(two, running, cancel=True)["job"]["cancel_requested"] is True
    assert one.progress(claimed, 1, 9) is True  # stops at its next step


def test_an_idempotency_key_answers_the_same_job_and_refuses_another_body(redis_server):
    one, two = replica(redis_server), replica(redis_server)
    key = Idempotency.of("order-7", {"inputs": {"prompt": "a"}}, None)
    first = one.submit({"inputs": {"prompt": "a"}}, None, idempotency=key)["job"]["id"]
    assert two.submit({"inputs": {"prompt": "a"}}, None, idempotency=key)["job"]["id"] == first
    other = Idempotency.of("order-7", {"inputs": {"prompt": "b"}}, None)
    with pytest.raises(InvalidRequest) as refused:
        two.submit({"inputs": {"prompt": "b"}}, None, idempotency=other)
    assert refused.value.field == "idempotency_key"
    assert one.take().id == first and one.take() is None  # queued once


def test_answers_share_one_byte_budget_and_expire(redis_server):
    probe = replica(redis_server)
    probe.submit({}, None)
    size = len(probe.finish(probe.take(), OK))  # one answer as kept (the same size for each below)
    redis_server.client().flushall()
    stores = [replica(redis_server, max_bytes=int(2.5 * size)), replica(redis_server, max_bytes=int(2.5 * size))]
    ids = []
    for n in range(6):
        store = stores[n % 2]
        ids.append(store.submit({"n": n}, None)["job"]["id"])
        store.finish(store.take(), OK)
    kept = [job_id for job_id in ids if _known(stores[0], job_id)]
    assert kept == ids[-2:]  # the oldest went first, whichever replica ran it
    assert int(redis_server.client().hget("video-endpoint:stats", "answer_bytes")) <= 2.5 * size
    short = replica(redis_server, ttl_s=0.2)
    job_id = short.submit({}, None)["job"]["id"]
    short.finish(short.take(), OK)
    time.sleep(0.4)  # the 0.2 s TTL passing is time itself
    short.submit({}, None)  # any write evicts what is past its time
    assert not _known(short, job_id)


def _known(store: RedisJobStore, job_id: str) -> bool:
    try:
        store.status_json(job_id)
    except InvalidRequest:
        return False
    return True


def test_a_stopped_redis_answers_unavailable_quickly_and_jobs_work_again_after(redis_server):
    store = replica(redis_server)
    job_id = store.submit({}, None)["job"]["id"]
    redis_server.stop()
    for call in (lambda: store.submit({}, None), lambda: store.status_json(job_id), store.take):
        started = time.monotonic()
        with pytest.raises(Unavailable) as down:
            call()
        assert time.monotonic() - started < 5 and "job store" in down.value.message
        assert down.value.envelope()["error"]["type"] == "unavailable"
    assert store.health()["reachable"] is False
    redis_server.start()  # empty: nothing was persisted
    assert store.health()["reachable"] is True
    again = store.submit({}, None)["job"]["id"]
    assert store.take().id == again


def test_the_handler_protocol_with_a_shared_store(tiny_model_dir, redis_server):
    """The stock toolkit's path: `{"inputs": {"async": true}}` on one handler, `{"job_id": ...}` on
    another (two replicas), the answer equal to the synchronous one."""
    from handler import EndpointHandler

    replicas = [EndpointHandler(str(tiny_model_dir)) for _ in range(2)]
    for handler in replicas:
        handler.open_jobs(JobSettings(store=redis_server.url, lease_s=2.0))
    request = {"prompt": "shared", **SMALL, "num_frames": 9, "outputs": ["zip"]}
    submitted = replicas[0]({"inputs": {**request, "async": True}})
    assert submitted["ok"] is True, submitted
    deadline = time.monotonic() + 60
    while (answer := replicas[1]({"inputs": {"job_id": submitted["job"]["id"]}}))["job"]["status"] != "succeeded":
        assert time.monotonic() < deadline and answer["ok"], answer
        time.sleep(0.05)
    seed = answer["diagnostics"]["seed"]  # drawn at submission: a rerun is the same video
    synchronous = replicas[1]({"inputs": {**request, "seed": seed}})
    np.testing.assert_array_equal(zip_frames(answer), zip_frames(synchronous))
    unknown = replicas[1]({"inputs": {"job_id": "nope"}})
    assert (unknown["ok"], unknown["error"]["field"]) == (False, "job_id")
    for handler in replicas:
        handler.scheduler.stop(0)


def test_a_password_in_the_url_and_tls_for_managed_redis(tmp_path):
    from tests.conftest import RedisServer

    server = RedisServer(tmp_path, password="s3cret-pw")
    try:
        store = replica(server)
        assert store.health()["reachable"] is True and store.take() is None
        job_id = store.submit({}, None)["job"]["id"]
        assert store.take().id == job_id
        wrong = RedisJobStore(JobSettings(store=server.url.replace("s3cret-pw", "wrong")))
        with pytest.raises(Unavailable) as refused:
            wrong.submit({}, None)
        assert "s3cret-pw" not in refused.value.message and "wrong" not in refused.value.message
    finally:
        server.stop()
    import redis

    tls = RedisJobStore(JobSettings(store="rediss://:pw@127.0.0.1:1/0"))  # as managed services need
    assert tls.client.connection_pool.connection_class is redis.SSLConnection
    assert tls.health()["reachable"] is False  # nothing listens there: refused quickly, not hung


def test_listing_and_deleting(redis_server):
    store = replica(redis_server)
    listing_and_deleting(store)
    # the answers and the kept requests were counted, and are freed
    assert int(redis_server.client().hget("video-endpoint:stats", "answer_bytes") or 0) == 0


def test_a_kept_request_counts_against_the_byte_budget(redis_server):
    store = replica(redis_server, max_bytes=5000)
    first = store.submit({}, None, meta={}, kept={"image": "x" * 3000})["job"]["id"]
    store.finish(store.take(), OK)
    assert int(redis_server.client().hget("video-endpoint:stats", "answer_bytes")) > 3000
    store.submit({}, None, meta={}, kept={"image": "y" * 3000})
    store.finish(store.take(), OK)
    assert not _known(store, first)  # the oldest went to make room
