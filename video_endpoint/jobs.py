"""Long generations as jobs: submit, poll with progress, cancel; results kept for a while.

Through the same `{"inputs": ...}` body, so they work on the stock Endpoint (whose toolkit runs one
handler call at a time and streams nothing):

    {"inputs": {...a request..., "async": true, "webhook": "https://..."}}  -> {"ok": true, "job": {...}}
    {"inputs": {"job_id": "..."}}                                          -> status (+ the answer when done)
    {"inputs": {"job_id": "...", "cancel": true}}                         -> stops it at its next step

Jobs run one at a time, in order, on a worker thread of their own; synchronous requests take their
turn on the same model lock. A job lives in this process's memory only: behind several replicas a
poll must reach the replica that took the job (README says what that means).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.base import StepCallback
from video_endpoint import settings
from video_endpoint.errors import Busy, Cancelled, InvalidRequest

logger = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
JOB_KEYS = ("async", "webhook", "job_id", "cancel")  # the job protocol's keys in `inputs`
SIGNATURE_HEADER = "X-Video-Signature"  # "sha256=<hex HMAC-SHA256 of the body with VIDEO_WEBHOOK_SECRET>"


@dataclass(frozen=True)
class JobSettings:
    ttl_s: float = float(settings.BY_NAME["VIDEO_JOB_TTL_S"].default)
    """finished jobs are kept this long"""
    max_bytes: int = int(settings.BY_NAME["VIDEO_JOB_MAX_BYTES"].default)
    """the kept results' outputs together; oldest out first"""
    max_queued: int = int(settings.BY_NAME["VIDEO_MAX_QUEUED"].default)
    """jobs that may wait; more answer `busy`"""
    webhook_hosts: tuple[str, ...] = ()
    """hosts (`host` or `host:port`) a webhook may be sent to"""
    webhook_secret: str = ""
    """the HMAC-SHA256 key of the webhook signature"""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        hosts = settings.read("VIDEO_WEBHOOK_HOSTS", environ)
        return cls(ttl_s=settings.read_float("VIDEO_JOB_TTL_S", environ) or 0.0,
                   max_bytes=settings.read_int("VIDEO_JOB_MAX_BYTES", environ),
                   max_queued=settings.read_int("VIDEO_MAX_QUEUED", environ),
                   webhook_hosts=tuple(h.strip().lower() for h in hosts.split(",") if h.strip()),
                   webhook_secret=settings.read("VIDEO_WEBHOOK_SECRET", environ))


@dataclass
class Job:
    id: str
    data: dict[str, Any]
    webhook: str | None
    submitted: float = field(default_factory=time.monotonic)
    status: str = QUEUED
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None
    """the handler's answer once finished"""
    answer_bytes: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    """the job as described after each change (status, each step), for event streams to replay"""


def _answer_bytes(answer: dict[str, Any]) -> int:
    outputs = answer.get("outputs") or {}
    return sum(len(value) for value in outputs.values()) + 4096  # + diagnostics, roughly


class JobQueue:
    """The jobs of one handler: a FIFO of waiting jobs, one worker, the finished ones for `ttl_s`."""

    def __init__(self, run: Callable[[dict[str, Any], StepCallback], dict[str, Any]], config: JobSettings) -> None:
        self.run = run
        self.config = config
        self.jobs: OrderedDict[str, Job] = OrderedDict()  # in submission order
        self.waiting: deque[Job] = deque()
        self.changed = threading.Condition()
        self.worker: threading.Thread | None = None
        self.seconds_per_job: float | None = None  # the last finished job's run time, for queued ETAs

    # -- the protocol ------------------------------------------------------------------------

    def submit(self, data: dict[str, Any], webhook: str | None) -> dict[str, Any]:
        if webhook is not None:
            self.check_webhook(webhook)
        with self.changed:
            self._evict()
            if len(self.waiting) >= self.config.max_queued:
                raise Busy(f"busy: {len(self.waiting)} jobs are waiting (VIDEO_MAX_QUEUED); retry later",
                           field=None)
            job = Job(id=secrets.token_urlsafe(18), data=data, webhook=webhook)
            self.jobs[job.id] = job
            self.waiting.append(job)
            if self.worker is None:
                self.worker = threading.Thread(target=self._work, name="video-jobs", daemon=True)
                self.worker.start()
            self.changed.notify_all()
            return {"ok": True, "job": self._describe(job)}

    def status(self, job_id: Any) -> dict[str, Any]:
        with self.changed:
            return self.answer_for(self._find(job_id))

    def cancel(self, job_id: Any) -> dict[str, Any]:
        with self.changed:
            job = self._find(job_id)
            if job.status == QUEUED:  # never starts
                self.waiting.remove(job)
                self._finish(job, CANCELLED, None)
            elif job.status == RUNNING:  # stops at its next step
                job.cancel.set()
                self._changed(job)
            return self.answer_for(job)

    def events(self, job_id: str, seen: int, timeout: float) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """For an event stream: the job's changes after the first `seen` (waiting up to `timeout` for
        one), and its final answer once it has ended."""
        with self.changed:
            job = self._find(job_id)
            self.changed.wait_for(lambda: len(job.history) > seen or job.status in FINISHED, timeout=timeout)
            return job.history[seen:], self.answer_for(job) if job.status in FINISHED else None

    def answer_for(self, job: Job) -> dict[str, Any]:
        answer: dict[str, Any] = {"ok": True, "job": self._describe(job)}
        if job.status == SUCCEEDED and job.answer is not None:
            answer.update(outputs=job.answer["outputs"], diagnostics=job.answer["diagnostics"])
        elif job.status in (FAILED, CANCELLED) and job.answer is not None:
            answer["error"] = job.answer["error"]
        return answer

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
        if job.status == QUEUED:
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
        if job.cancel.is_set() and job.status == RUNNING:
            described["cancel_requested"] = True
        return described

    def _changed(self, job: Job) -> None:
        job.history.append(self._describe(job))
        self.changed.notify_all()

    def _finish(self, job: Job, status: str, answer: dict[str, Any] | None) -> None:
        job.status, job.finished = status, time.monotonic()
        if answer is None and status == CANCELLED:
            answer = {"ok": False, "error": {"type": "cancelled", "field": None, "message": "cancelled before it ran"}}
        job.answer, job.answer_bytes = answer, _answer_bytes(answer or {})
        job.data = {}  # the request (its image) is not kept
        self._evict()
        self.changed.notify_all()

    def _evict(self) -> None:
        """Finished jobs past their time, then the oldest finished ones while over the byte cap."""
        now = time.monotonic()
        finished = [job for job in self.jobs.values() if job.status in FINISHED]
        total = sum(job.answer_bytes for job in finished)
        for job in finished:  # oldest first
            if now - (job.finished or now) > self.config.ttl_s or total > self.config.max_bytes:
                total -= job.answer_bytes
                del self.jobs[job.id]

    def _work(self) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(lambda: bool(self.waiting))
                job = self.waiting.popleft()
                job.status, job.started = RUNNING, time.monotonic()
                self._changed(job)
            answer = self._run(job)
            with self.changed:
                if answer.get("ok"):
                    status = SUCCEEDED
                elif answer["error"]["type"] == "cancelled":
                    status = CANCELLED
                else:
                    status = FAILED
                self.seconds_per_job = time.monotonic() - (job.started or time.monotonic())
                self._finish(job, status, answer)
                final = self.answer_for(job) if job.webhook else None
            if final is not None:
                threading.Thread(target=self.send_webhook, args=(job.webhook, final), daemon=True).start()

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
            return {"ok": False, "error": {"type": "internal", "field": None, "message": "internal error"}}

    # -- webhooks ----------------------------------------------------------------------------

    def check_webhook(self, url: Any) -> None:
        """Only to a host the operator listed: no request may make this server call any address."""
        if not self.config.webhook_hosts or not self.config.webhook_secret:
            raise InvalidRequest("webhooks are off on this server (VIDEO_WEBHOOK_HOSTS and VIDEO_WEBHOOK_SECRET)",
                                 field="webhook")
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) and len(url) <= 2000 else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest("webhook must be an http(s) URL", field="webhook")
        host = parts.hostname.lower()
        try:
            with_port = f"{host}:{parts.port}" if parts.port else host
        except ValueError:
            raise InvalidRequest("webhook must be an http(s) URL", field="webhook") from None
        if host not in self.config.webhook_hosts and with_port not in self.config.webhook_hosts:
            raise InvalidRequest("webhook host is not one this server sends to (VIDEO_WEBHOOK_HOSTS)",
                                 field="webhook")

    def send_webhook(self, url: str, answer: dict[str, Any], attempts: int = 3) -> bool:
        """POST the final answer, signed; redirects are not followed (they could lead anywhere)."""
        body = json.dumps(answer, separators=(",", ":")).encode()
        signature = hmac.new(self.config.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: f"sha256={signature}",
            "X-Video-Job-Id": answer["job"]["id"]})
        opener = urllib.request.build_opener(_NoRedirect)
        for attempt in range(attempts):
            try:
                with opener.open(request, timeout=10) as response:
                    if 200 <= response.status < 300:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500:  # a redirect (not followed) or a refusal: trying again changes nothing
                    logger.warning("webhook for job %s: HTTP %d, not sent again", answer["job"]["id"], exc.code)
                    return False
                logger.warning("webhook for job %s: attempt %d: HTTP %d", answer["job"]["id"], attempt + 1, exc.code)
            except (urllib.error.URLError, OSError) as exc:
                logger.warning("webhook for job %s: attempt %d failed: %s", answer["job"]["id"], attempt + 1, exc)
            time.sleep(min(2.0**attempt, 10.0))
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def signature_of(body: bytes, secret: str) -> str:
    """What `SIGNATURE_HEADER` carries for `body`: receivers compare it with hmac.compare_digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
