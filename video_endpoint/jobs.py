"""Long generations as jobs: submit, poll with progress, cancel; results kept for a while.

Through the same `{"inputs": ...}` body, so they work on the stock Endpoint (whose toolkit runs one
handler call at a time and streams nothing):

    {"inputs": {...a request..., "async": true, "webhook": "https://..."}}  -> {"ok": true, "job": {...}}
    {"inputs": {"job_id": "..."}}                                          -> status (+ the answer when done)
    {"inputs": {"job_id": "...", "cancel": true}}                         -> stops it at its next step

`request_schema.read_job_call` is the one reading of those keys: the handler and the local server
both route a body by what it says (`"async": false` is a plain synchronous request, with every guard of one).

Jobs run one at a time, in order, on a worker thread of their own; synchronous requests take their
turn on the same model lock. A job lives in this process's memory only: behind several replicas a
poll must reach the replica that took the job (README says what that means). A finished job's
answer is kept once, as the JSON bytes every poll, event stream and webhook sends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pipelines.base import StepCallback
from video_endpoint import settings
from video_endpoint.errors import Busy, Cancelled, InvalidRequest
from video_endpoint.http_url import BadUrl, HttpTarget, parse_allowed_url, send, send_with_retries

logger = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
SIGNATURE_HEADER = "X-Video-Signature"  # "sha256=<hex HMAC-SHA256 of '<timestamp>.<body>'>"
TIMESTAMP_HEADER = "X-Video-Timestamp"  # unix seconds when the webhook was signed
WEBHOOK_TIMEOUT_S = 10.0  # per attempt: connecting, and waiting for the receiver's answer
WEBHOOK_SENDERS = 2  # threads that deliver webhooks: a slow receiver never adds threads


@dataclass(frozen=True)
class JobSettings:
    ttl_s: float = float(settings.BY_NAME["VIDEO_JOB_TTL_S"].default)
    """finished jobs are kept this long"""
    max_bytes: int = int(settings.BY_NAME["VIDEO_JOB_MAX_BYTES"].default)
    """the kept answers together; oldest out first"""
    max_kept: int = int(settings.BY_NAME["VIDEO_MAX_KEPT_JOBS"].default)
    """finished jobs kept at most, whatever their size; oldest out first"""
    max_queued: int = int(settings.BY_NAME["VIDEO_MAX_QUEUED"].default)
    """jobs that may wait; more answer `busy`"""
    max_held_bytes: int = int(settings.BY_NAME["VIDEO_JOB_MAX_INPUT_BYTES"].default)
    """the decoded inputs (frames of input videos, images) of the waiting jobs together; more answer `busy`"""
    webhook_hosts: tuple[str, ...] = ()
    """hosts (`host` or `host:port`) a webhook may be sent to"""
    webhook_secret: str = ""
    """the HMAC-SHA256 key of the webhook signature"""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        return cls(ttl_s=settings.read_float("VIDEO_JOB_TTL_S", environ) or 0.0,
                   max_bytes=settings.read_int("VIDEO_JOB_MAX_BYTES", environ),
                   max_kept=settings.read_int("VIDEO_MAX_KEPT_JOBS", environ),
                   max_queued=settings.read_int("VIDEO_MAX_QUEUED", environ),
                   max_held_bytes=settings.read_int("VIDEO_JOB_MAX_INPUT_BYTES", environ),
                   webhook_hosts=settings.host_list("VIDEO_WEBHOOK_HOSTS", environ),
                   webhook_secret=settings.read("VIDEO_WEBHOOK_SECRET", environ))


# -- webhooks: one reading of the URL, for the check and for the sending ----------------------------

def parse_webhook(url: Any, allowed_hosts: tuple[str, ...]) -> HttpTarget:
    """The address a webhook goes to, only on a host the operator listed; the sender connects to
    exactly this host and port (no request may make this server call any other address)."""
    if not isinstance(url, str) or len(url) > 2000:
        raise InvalidRequest("webhook must be an http(s) URL of 2,000 characters at most", field="webhook")
    try:
        return parse_allowed_url(url, allowed_hosts, "VIDEO_WEBHOOK_HOSTS")
    except BadUrl as exc:
        raise InvalidRequest(f"webhook {exc}", field="webhook") from None


def signature_of(body: bytes, secret: str, timestamp: int) -> str:
    """What `SIGNATURE_HEADER` carries for `body` sent at `timestamp` (`TIMESTAMP_HEADER`)."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str, timestamp: str, secret: str, tolerance_s: float = 300.0,
                     now: float | None = None) -> bool:
    """A receiver's check: the signature matches and was made within `tolerance_s` of now (a
    replayed delivery older than that fails; dedupe within the window by `X-Video-Job-Id`)."""
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(signature, signature_of(body, secret, int(timestamp)))


# -- jobs ----------------------------------------------------------------------------------------

@dataclass
class Job:
    id: str
    data: Any
    """the request as submitted (the handler's: parsed, image decoded), dropped once it ends"""
    webhook: HttpTarget | None
    held_bytes: int = 0
    """the memory its decoded inputs take while it waits"""
    submitted: float = field(default_factory=time.monotonic)
    status: str = QUEUED
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    answer: bytes | None = None
    """once finished: the final answer as JSON, what every poll sends"""
    history: list[dict[str, Any]] = field(default_factory=list)
    """the job as described after each change (status, each step), for event streams to replay"""
    watchers: list[Callable[[], None]] = field(default_factory=list)
    """called (under the queue's lock; they must not block) after each change"""


class JobQueue:
    """The jobs of one handler: a FIFO of waiting jobs, one worker, the finished ones for `ttl_s`."""

    def __init__(self, run: Callable[[Any, StepCallback], dict[str, Any]], config: JobSettings) -> None:
        """`run(request, on_step)` serves a submitted request (whatever `submit` was given)."""
        self.run = run
        self.config = config
        self.jobs: dict[str, Job] = {}  # every kept job, by id
        self.finished: OrderedDict[str, Job] = OrderedDict()  # the ended ones, in the order they ended
        self.finished_bytes = 0
        self.waiting: deque[Job] = deque()
        self.changed = threading.Condition()
        self.worker: threading.Thread | None = None
        self.webhooks = ThreadPoolExecutor(max_workers=WEBHOOK_SENDERS, thread_name_prefix="video-webhook")
        self.seconds_per_job: float | None = None  # the last finished job's run time, for queued ETAs

    # -- the protocol ------------------------------------------------------------------------

    def submit(self, data: Any, webhook: str | None, held_bytes: int = 0) -> dict[str, Any]:
        """Queue `data` (whose decoded inputs take `held_bytes` while it waits)."""
        target = self.check_webhook(webhook) if webhook is not None else None
        with self.changed:
            self._evict()
            if len(self.waiting) >= self.config.max_queued:
                raise Busy(f"busy: {len(self.waiting)} jobs are waiting (VIDEO_MAX_QUEUED); retry later",
                           field=None)
            held = sum(job.held_bytes for job in self.waiting)
            if held_bytes and held + held_bytes > self.config.max_held_bytes:
                raise Busy(f"busy: the waiting jobs' decoded inputs take {held // 2**20} MiB, and this one's "
                           f"{held_bytes // 2**20} MiB more would pass {self.config.max_held_bytes // 2**20} MiB "
                           "(VIDEO_JOB_MAX_INPUT_BYTES); retry later", field=None)
            job = Job(id=secrets.token_urlsafe(18), data=data, webhook=target, held_bytes=held_bytes)
            self.jobs[job.id] = job
            self.waiting.append(job)
            if self.worker is None:  # the first job
                self.worker = threading.Thread(target=self._work, name="video-jobs", daemon=True)
                self.worker.start()
            self.changed.notify_all()
            return {"ok": True, "job": self._describe(job)}

    def status(self, job_id: Any) -> dict[str, Any]:
        with self.changed:
            job = self._find(job_id)
            if job.answer is None:
                return self.answer_for(job)
        return dict(json.loads(job.answer))  # a finished job's answer is fixed: parsed outside the lock

    def cancel(self, job_id: Any) -> dict[str, Any]:
        self.request_cancel(job_id)
        return self.status(job_id)

    def status_json(self, job_id: Any, cancel: bool = False) -> bytes:
        """What `status` (or `cancel`) answers, as JSON: a finished job's is the one kept copy."""
        if cancel:
            self.request_cancel(job_id)
        with self.changed:
            job = self._find(job_id)
            return job.answer if job.answer is not None else _json(self.answer_for(job))

    def request_cancel(self, job_id: Any) -> None:
        with self.changed:
            job = self._find(job_id)
            if job.status == QUEUED:  # never starts
                self.waiting.remove(job)
                self._finish(job, CANCELLED, {"ok": False, "error": {
                    "type": "cancelled", "field": None, "message": "cancelled before it ran"}})
            elif job.status == RUNNING:  # stops at its next step
                job.cancel.set()
                self._changed(job)

    def events(self, job_id: Any, seen: int) -> tuple[list[dict[str, Any]], bool]:
        """For an event stream: the job's changes after the first `seen`, and whether it has ended
        (its answer: `status_json`). Never waits: `watch` says when to ask again."""
        with self.changed:
            job = self._find(job_id)
            return job.history[seen:], job.answer is not None

    def watch(self, job_id: Any, wake: Callable[[], None]) -> None:
        with self.changed:
            self._find(job_id).watchers.append(wake)

    def unwatch(self, job_id: Any, wake: Callable[[], None]) -> None:
        with self.changed:
            job = self.jobs.get(job_id)
            if job is not None and wake in job.watchers:
                job.watchers.remove(wake)

    def answer_for(self, job: Job) -> dict[str, Any]:
        """A job that has not ended, described (an ended one's answer is `job.answer`)."""
        return {"ok": True, "job": self._describe(job)}

    # -- inside ------------------------------------------------------------------------------

    def _find(self, job_id: Any) -> Job:
        self._evict()
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise InvalidRequest("unknown or expired job id (jobs are kept VIDEO_JOB_TTL_S after they end, "
                                 "in the memory of the replica that took them)", field="job_id")
        return job

    def _describe(self, job: Job) -> dict[str, Any]:
        now = time.monotonic()
        position = None
        if job.status == QUEUED:  # at most VIDEO_MAX_QUEUED to look through
            position = next(i for i, waiting in enumerate(self.waiting, start=1) if waiting is job)
        elif job.status == RUNNING:
            position = 0
        eta = None
        if job.status == RUNNING and job.started is not None and job.step and job.total:
            eta = (now - job.started) / job.step * (job.total - job.step)
        elif job.status == QUEUED and self.seconds_per_job is not None and position is not None:
            eta = self.seconds_per_job * position
        described = {"id": job.id, "status": job.status, "progress": {"step": job.step, "total": job.total},
                     "position": position, "elapsed_s": round((job.finished or now) - job.submitted, 3),
                     "eta_s": None if eta is None else round(eta, 1)}
        if job.cancel.is_set() and job.status in (RUNNING, SUCCEEDED):
            described["cancel_requested"] = True
            if job.status == SUCCEEDED:
                described["note"] = "the cancel arrived after the last step: the finished answer is kept"
        return described

    def _changed(self, job: Job) -> None:
        job.history.append(self._describe(job))
        self._wake(job)

    def _wake(self, job: Job) -> None:
        for wake in job.watchers:
            wake()
        self.changed.notify_all()

    def _final(self, job: Job, status: str, answer: dict[str, Any]) -> bytes:
        """The job's final answer as JSON, as polls will see it once it is published."""
        ended = dataclasses.replace(job, status=status, finished=time.monotonic())
        with self.changed:
            final = self.answer_for(ended)
        if status == SUCCEEDED:
            final.update(outputs=answer["outputs"], diagnostics=answer["diagnostics"])
        else:
            final["error"] = answer["error"]
        return _json(final)

    def _finish(self, job: Job, status: str, answer: dict[str, Any], body: bytes | None = None) -> None:
        """Publish the end (under the lock): `body` is `_final`'s JSON when it was made outside it."""
        if body is None:
            body = self._final(job, status, answer)
        job.status, job.finished, job.answer = status, time.monotonic(), body
        job.data = None  # the request (its image) is not kept
        self.finished[job.id] = job
        self.finished_bytes += len(body)
        self._evict()
        self._wake(job)
        job.watchers.clear()

    def _evict(self) -> None:
        """The finished jobs past their time, then the oldest while over the byte or count cap: from
        the front of `finished`, so each call costs what it evicts."""
        now = time.monotonic()
        while self.finished:
            oldest = next(iter(self.finished.values()))
            expired = now - (oldest.finished or now) > self.config.ttl_s
            if not (expired or self.finished_bytes > self.config.max_bytes
                    or len(self.finished) > self.config.max_kept):
                break
            del self.finished[oldest.id], self.jobs[oldest.id]
            self.finished_bytes -= len(oldest.answer or b"")

    def _work(self) -> None:
        try:
            while True:
                with self.changed:
                    self.changed.wait_for(lambda: bool(self.waiting))
                    job = self.waiting.popleft()
                    job.status, job.started = RUNNING, time.monotonic()
                    self._changed(job)
                try:
                    self._run_to_end(job)
                finally:
                    if job.answer is None:  # whatever stops this worker, the job it held ends
                        with self.changed:
                            self._finish(job, FAILED, _internal_error())
        finally:  # only something the handler could not catch ends the loop: the next worker takes over
            logger.error("the job worker stopped; starting another")
            with self.changed:
                self.worker = threading.Thread(target=self._work, name="video-jobs", daemon=True)
                self.worker.start()

    def _run_to_end(self, job: Job) -> None:
        answer = self._run(job)
        if answer.get("ok"):
            status = SUCCEEDED
        elif answer["error"]["type"] == "cancelled":
            status = CANCELLED
        else:
            status = FAILED
        try:  # outside the lock: a large answer takes a moment to serialize
            body = self._final(job, status, answer)
        except (TypeError, ValueError):
            logger.exception("job %s: its answer is not JSON", job.id)
            status, answer = FAILED, _internal_error()
            body = self._final(job, status, answer)
        if len(body) > self.config.max_bytes:
            status, answer = FAILED, {"ok": False, "error": {
                "type": "invalid_request", "field": "outputs",
                "message": f"the answer ({len(body):,} bytes) is larger than this server keeps for a job "
                           f"(VIDEO_JOB_MAX_BYTES, {self.config.max_bytes:,}): ask for fewer or smaller outputs"}}
            body = self._final(job, status, answer)
        with self.changed:
            self.seconds_per_job = time.monotonic() - (job.started or time.monotonic())
            self._finish(job, status, answer, body)
        if job.webhook is not None:
            self.webhooks.submit(self._deliver, job.webhook, job.id, body)

    def _run(self, job: Job) -> dict[str, Any]:
        def on_step(done: int, total: int) -> None:
            with self.changed:
                job.step, job.total = done, total
                self._changed(job)
            if job.cancel.is_set():
                raise Cancelled(f"cancelled at step {done} of {total}", field=None)

        try:
            return self.run(job.data, on_step)
        except Exception:  # the handler answers errors itself; this is a last resort
            logger.exception("job %s failed", job.id)
            return _internal_error()

    # -- webhooks ----------------------------------------------------------------------------

    def check_webhook(self, url: Any) -> HttpTarget:
        if not self.config.webhook_hosts or not self.config.webhook_secret:
            raise InvalidRequest("webhooks are off on this server (VIDEO_WEBHOOK_HOSTS and VIDEO_WEBHOOK_SECRET)",
                                 field="webhook")
        return parse_webhook(url, self.config.webhook_hosts)

    def _deliver(self, target: HttpTarget, job_id: str, body: bytes) -> None:
        try:
            self.send_webhook(target, job_id, body)
        except Exception:  # a sender thread outlives any one delivery
            logger.exception("webhook for job %s failed", job_id)

    def send_webhook(self, target: HttpTarget, job_id: str, body: bytes, attempts: int = 3) -> bool:
        """POST the final answer, signed. Tried again only when the receiver was not reached or
        answered 5xx: once the body is sent, a slow answer is not a reason to send it twice.
        Redirects are not followed (they could lead anywhere)."""

        def post() -> int:
            timestamp = int(time.time())  # signed when sent: each attempt is timestamped anew
            return send(target, "POST", body, {
                "Content-Type": "application/json", "X-Video-Job-Id": job_id, TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature_of(body, self.config.webhook_secret, timestamp)}, WEBHOOK_TIMEOUT_S)

        delivered, _ = send_with_retries(post, f"webhook for job {job_id}", attempts)
        return delivered


def _json(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode()


def _internal_error() -> dict[str, Any]:
    return {"ok": False, "error": {"type": "internal", "field": None, "message": "internal error"}}
