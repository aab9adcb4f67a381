"""Long generations as jobs: submit, poll with progress, cancel; results kept for a while.

Through the same `{"inputs": ...}` body, so they work on the stock Endpoint (whose toolkit runs one
handler call at a time and streams nothing):

    {"inputs": {...a request..., "async": true, "webhook": "https://..."}}  -> {"ok": true, "job": {...}}
    {"inputs": {"job_id": "..."}}                                          -> status (+ the answer when done)
    {"inputs": {"job_id": "...", "cancel": true}}                         -> stops it at its next step

`request_schema.read_job_call` is the one reading of those keys: the handler and the local server
both route a body by what it says (`"async": false` is a plain synchronous request, with every guard of one).

A job store keeps the jobs: their ids, status, progress, answers (under a TTL and one byte budget)
and idempotency keys. `JobStore` is what the scheduler (`video_endpoint.scheduler`) and the routes
ask of one; `InProcessJobStore` (here, the default) keeps them in this process's memory,
`video_endpoint.redis_jobs.RedisJobStore` (VIDEO_JOB_STORE=redis://...) in a Redis that every
replica shares. The scheduler takes a job from its store only when its model is free.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from video_endpoint import metrics, settings
from video_endpoint.errors import Busy, Cancelled, HandlerError, InvalidRequest, NotFound

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
DELETED = "deleted"  # stopped and forgotten: reads answer unknown, a run still going stops at its next step
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
UNKNOWN_JOB = "unknown or expired job id (jobs are kept VIDEO_JOB_TTL_S after they end)"


@dataclass(frozen=True)
class JobSettings:
    ttl_s: float = float(settings.BY_NAME["VIDEO_JOB_TTL_S"].default)
    """finished jobs (and idempotency keys) are kept this long"""
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
    store: str = ""
    """where jobs are kept: "" = this process's memory, or a redis:// or rediss:// URL"""
    lease_s: float = float(settings.BY_NAME["VIDEO_JOB_LEASE_S"].default)
    """a running job whose replica has not been heard from this long runs again elsewhere"""
    max_attempts: int = int(settings.BY_NAME["VIDEO_JOB_MAX_ATTEMPTS"].default)
    """runs of one job at most (each replica that died running it counts one)"""
    shutdown_grace_s: float = float(settings.BY_NAME["VIDEO_SHUTDOWN_GRACE_S"].default)
    """on SIGTERM, a running job that ends within this is finished; a longer one is handed back"""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        return cls(ttl_s=settings.read_float("VIDEO_JOB_TTL_S", environ) or 0.0,
                   max_bytes=settings.read_int("VIDEO_JOB_MAX_BYTES", environ),
                   max_kept=settings.read_int("VIDEO_MAX_KEPT_JOBS", environ),
                   max_queued=settings.read_int("VIDEO_MAX_QUEUED", environ),
                   max_held_bytes=settings.read_int("VIDEO_JOB_MAX_INPUT_BYTES", environ),
                   webhook_hosts=settings.host_list("VIDEO_WEBHOOK_HOSTS", environ),
                   webhook_secret=settings.read("VIDEO_WEBHOOK_SECRET", environ),
                   store=settings.read("VIDEO_JOB_STORE", environ),
                   lease_s=settings.read_float("VIDEO_JOB_LEASE_S", environ) or 1.0,
                   max_attempts=max(1, settings.read_int("VIDEO_JOB_MAX_ATTEMPTS", environ)),
                   shutdown_grace_s=settings.read_float("VIDEO_SHUTDOWN_GRACE_S", environ) or 0.0)


def replica_name() -> str:
    """This replica in the store and the log: host, process and a random tail (a restarted
    process with the same pid is another replica)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


# -- what every store shares --------------------------------------------------------------------

@dataclass(frozen=True)
class Idempotency:
    """A submission's `Idempotency-Key` and the digest of what it asked: the same key with another
    body is refused."""

    key: str
    digest: str

    @classmethod
    def of(cls, key: Any, request: Any, webhook: str | None) -> Idempotency | None:
        if key is None:
            return None
        if not isinstance(key, str) or not 1 <= len(key) <= 255 or not key.isprintable():
            raise InvalidRequest("idempotency_key must be 1 to 255 printable characters", field="idempotency_key")
        asked = json.dumps([request, webhook], sort_keys=True, separators=(",", ":"), default=str)
        return cls(key, hashlib.sha256(asked.encode()).hexdigest())


def key_reused() -> InvalidRequest:
    return InvalidRequest("this idempotency_key was used for another request: send that request again, or "
                          "use a new key", field="idempotency_key")


@dataclass
class Claimed:
    """A job a replica took from its store to run: this attempt's number fences its answer (the
    store records an end only from the attempt it handed out last)."""

    id: str
    attempt: int
    payload: Any
    """what was submitted: the decoded request (in process) or the request body (Redis)"""
    webhook: str | None
    started: float = field(default_factory=time.monotonic)
    submitted_at: float = 0.0
    """when it was submitted (unix time)"""
    request_id: str = ""
    """the id of the request that submitted it"""


def describe(job_id: str, status: str, step: int, total: int | None, position: int | None, elapsed_s: float,
             eta_s: float | None, cancel_requested: bool, extra: Mapping[str, Any] = {}) -> dict[str, Any]:
    """A job as a poll shows it."""
    described = {"id": job_id, "status": status, "progress": {"step": step, "total": total}, "position": position,
                 "elapsed_s": round(elapsed_s, 3), "eta_s": None if eta_s is None else round(eta_s, 1), **extra}
    if cancel_requested and status == RUNNING:
        described["cancel_requested"] = True
    return described


def running_eta(elapsed_s: float, step: int, total: int | None) -> float | None:
    return elapsed_s / step * (total - step) if step and total else None


def final_answer(description: dict[str, Any], status: str, answer: dict[str, Any], max_bytes: int) -> tuple[
        str, bytes]:
    """The job's status and final answer as JSON, as polls will see it: a generation's answer
    (outputs, diagnostics) or its error; an answer over `max_bytes` fails instead."""
    job = {**description, "status": status, "position": None, "eta_s": None}
    if job.pop("cancel_requested", False) and status == SUCCEEDED:
        job.update(cancel_requested=True, note="the cancel arrived after the last step: the finished answer is kept")
    final: dict[str, Any] = {"ok": True, "job": job}
    try:
        if status == SUCCEEDED:
            final.update(outputs=answer["outputs"], diagnostics=answer["diagnostics"])
        else:
            final["error"] = answer["error"]
        body = json_bytes(final)
    except (TypeError, ValueError, KeyError):
        return final_answer(description, FAILED, internal_error(), max_bytes)
    if len(body) > max_bytes:
        too_large = InvalidRequest(f"the answer ({len(body):,} bytes) is larger than this server keeps for a job "
                                   f"(VIDEO_JOB_MAX_BYTES, {max_bytes:,}): ask for fewer or smaller outputs",
                                   field="outputs")
        return final_answer(description, FAILED, too_large.envelope(), max_bytes)
    return status, body


def status_of(answer: dict[str, Any]) -> str:
    if answer.get("ok"):
        return SUCCEEDED
    return CANCELLED if answer["error"]["type"] == "cancelled" else FAILED


def json_bytes(answer: Any) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode()


def internal_error() -> dict[str, Any]:
    return HandlerError("internal error").envelope()


def cancelled_before_it_ran() -> dict[str, Any]:
    return Cancelled("cancelled before it ran").envelope()


class JobStore(Protocol):
    """What the scheduler and the routes ask of a job store. Lookups raise NotFound for an
    unknown id; a store that cannot be reached raises `errors.Unavailable`.

    A job submitted with `meta` (the /v1/videos routes' video: its model, prompt, resolved
    parameters) shows it in every description, and is `listed`, in submission order; what it is
    submitted with as `kept` (its request, which a remix starts from) is kept as long as the job,
    counted with its answer against VIDEO_JOB_MAX_BYTES, and read by `kept` only;
    `delete` stops a job (queued: never runs; running: at its next step) and forgets it."""

    name: str
    replica: str
    """this process in the store and the log"""
    shared: bool
    """whether other processes see the jobs (then a job keeps its request body, decoded where it runs)"""
    poll_interval_s: float | None
    """how often an idle scheduler asks `take`, and an event stream looks for changes; None: the
    store wakes them itself (`wake`, `watch`)"""
    wake: Callable[[], None]
    """set by the scheduler: called when a job is submitted here"""
    orphan_webhook: Callable[[str, str, bytes, str], None] | None
    """set by the scheduler: sends (url, job id, answer, request id) for a job whose recording replica died
    before its webhook was sent (a shared store's; never called in memory)"""

    def submit(self, payload: Any, webhook: str | None, held_bytes: int = 0,
               idempotency: Idempotency | None = None, meta: dict[str, Any] | None = None,
               kept: Any = None, request_id: str = "") -> dict[str, Any]: ...
    def status_json(self, job_id: Any, cancel: bool = False) -> bytes: ...
    def kept(self, job_id: Any) -> Any: ...
    def delete(self, job_id: Any) -> None: ...
    def listed(self, after: str | None, limit: int, newest_first: bool) -> tuple[list[bytes], bool]: ...
    def events(self, job_id: Any, seen: int) -> tuple[list[dict[str, Any]], bool]: ...
    def watch(self, job_id: Any, wake: Callable[[], None]) -> None: ...
    def unwatch(self, job_id: Any, wake: Callable[[], None]) -> None: ...
    def take(self) -> Claimed | None: ...
    def progress(self, claimed: Claimed, step: int, total: int) -> bool: ...
    def finish(self, claimed: Claimed, answer: dict[str, Any]) -> bytes | None: ...
    def hand_back(self, claimed: Claimed) -> None: ...
    def webhook_sent(self, job_id: str) -> None: ...
    def eta_s(self, claimed: Claimed) -> float | None: ...
    def health(self) -> dict[str, Any]: ...
    def counts(self) -> dict[str, int] | None:
        """Jobs by status: queued, running, finished (kept for polling); None when not reachable."""
    def close(self) -> None: ...


# -- in this process's memory -------------------------------------------------------------------

@dataclass
class Job:
    id: str
    data: Any
    """the request as submitted (parsed, images decoded), dropped once it ends"""
    webhook: str | None
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
    """called (under the store's lock; they must not block) after each change"""
    key: str | None = None
    """its idempotency key, kept while the job is"""
    meta: dict[str, Any] | None = None
    """what its submitter shows with it (`JobStore`)"""
    kept: Any = None
    """what its submitter keeps with it (`JobStore`)"""
    kept_bytes: int = 0
    request_id: str = ""
    """the id of the request that submitted it"""


class InProcessJobStore:
    """The jobs of one process: a FIFO of waiting jobs, the finished ones for `ttl_s`. A restart
    loses them all; behind several replicas a poll must reach the replica that took the job."""

    name = "memory"
    shared = False
    poll_interval_s: float | None = None

    def __init__(self, config: JobSettings, requests_ahead: Callable[[], int] = lambda: 0) -> None:
        """`requests_ahead()`: the synchronous requests the scheduler serves before any job."""
        self.config = config
        self.replica = replica_name()
        self.requests_ahead = requests_ahead
        self.wake: Callable[[], None] = lambda: None
        self.orphan_webhook: Callable[[str, str, bytes, str], None] | None = None
        self.jobs: dict[str, Job] = {}  # every kept job, by id
        self.finished: OrderedDict[str, Job] = OrderedDict()  # the ended ones, in the order they ended
        self.finished_bytes = 0
        self.waiting: deque[Job] = deque()
        self.running: dict[str, Job] = {}  # taken by the scheduler, until it ends (deleted ones too)
        self.keys: dict[str, tuple[str, str]] = {}  # idempotency key -> (digest, job id), while the job is kept
        self.changed = threading.Condition()
        self.seconds_per_job: float | None = None  # the last finished job's run time, for queued ETAs

    def submit(self, payload: Any, webhook: str | None, held_bytes: int = 0,
               idempotency: Idempotency | None = None, meta: dict[str, Any] | None = None,
               kept: Any = None, request_id: str = "") -> dict[str, Any]:
        """Queue `payload` (whose decoded inputs take `held_bytes` while it waits)."""
        with self.changed:
            self._evict()
            if idempotency is not None and idempotency.key in self.keys:
                digest, job_id = self.keys[idempotency.key]
                if digest != idempotency.digest:
                    raise key_reused()
                return {"ok": True, "job": self._describe(self.jobs[job_id])}
            if len(self.waiting) >= self.config.max_queued:
                raise Busy(f"busy: {len(self.waiting)} jobs are waiting (VIDEO_MAX_QUEUED); retry later",
                           field=None)
            held = sum(job.held_bytes for job in self.waiting)
            if held_bytes and held + held_bytes > self.config.max_held_bytes:
                raise Busy(f"busy: the waiting jobs' decoded inputs take {held // 2**20} MiB, and this one's "
                           f"{held_bytes // 2**20} MiB more would pass {self.config.max_held_bytes // 2**20} MiB "
                           "(VIDEO_JOB_MAX_INPUT_BYTES); retry later", field=None)
            job = Job(id=secrets.token_urlsafe(18), data=payload, webhook=webhook, held_bytes=held_bytes,
                      key=idempotency.key if idempotency is not None else None, meta=meta, kept=kept,
                      kept_bytes=len(json_bytes(kept)) if kept is not None else 0, request_id=request_id)
            self.jobs[job.id] = job
            if idempotency is not None:
                self.keys[idempotency.key] = (idempotency.digest, job.id)
            self.waiting.append(job)
            self.changed.notify_all()
            described = {"ok": True, "job": self._describe(job)}
        self.wake()
        return described

    def status_json(self, job_id: Any, cancel: bool = False) -> bytes:
        """What a poll (or a cancel) answers, as JSON: a finished job's is the one kept copy."""
        with self.changed:
            job = self._find(job_id)
            if cancel:
                self._cancel(job)
            return job.answer if job.answer is not None else json_bytes({"ok": True, "job": self._describe(job)})

    def kept(self, job_id: Any) -> Any:
        with self.changed:
            return self._find(job_id).kept

    def delete(self, job_id: Any) -> None:
        with self.changed:
            job = self._find(job_id)
            if job.status == QUEUED:
                self.waiting.remove(job)
            elif job.status == RUNNING:  # stops at its next step; its end is not recorded (`finish`)
                job.cancel.set()
            self._forget(job)
            job.status = DELETED
            self._wake(job)
            job.watchers.clear()

    def listed(self, after: str | None, limit: int, newest_first: bool) -> tuple[list[bytes], bool]:
        """Up to `limit` of the jobs submitted with `meta`, as polls show them, from the one after
        `after` on; and whether there are more."""
        with self.changed:
            self._evict()
            jobs = [job for job in self.jobs.values() if job.meta is not None and job.status != DELETED]
            if newest_first:
                jobs.reverse()
            if after is not None:
                index = next((i for i, job in enumerate(jobs) if job.id == after), None)
                if index is None:
                    raise NotFound(UNKNOWN_JOB, field="after")
                jobs = jobs[index + 1:]
            page = [job.answer or json_bytes({"ok": True, "job": self._describe(job)}) for job in jobs[:limit]]
            return page, len(jobs) > limit

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

    # -- the scheduler's side --------------------------------------------------------------------

    def take(self) -> Claimed | None:
        with self.changed:
            if not self.waiting:
                return None
            job = self.waiting.popleft()
            job.status, job.started = RUNNING, time.monotonic()
            self.running[job.id] = job
            self._changed(job)
            return Claimed(job.id, 1, job.data, job.webhook, request_id=job.request_id,
                           submitted_at=time.time() - (time.monotonic() - job.submitted))

    def progress(self, claimed: Claimed, step: int, total: int) -> bool:
        """Record a step; whether the job should stop (a cancel)."""
        with self.changed:
            job = self.running[claimed.id]
            job.step, job.total = step, total
            self._changed(job)
            return job.cancel.is_set()

    def finish(self, claimed: Claimed, answer: dict[str, Any]) -> bytes | None:
        with self.changed:
            job = self.running.pop(claimed.id)
            if job.status == DELETED:
                return None
            description = self._describe(job)
        status, body = final_answer(description, status_of(answer), answer, self.config.max_bytes)
        with self.changed:
            self.seconds_per_job = time.monotonic() - (job.started or time.monotonic())
            self._finish(job, status, body)
        return body

    def hand_back(self, claimed: Claimed) -> None:
        """The job waits again, first in line (this process is stopping: lost with it)."""
        with self.changed:
            job = self.running.pop(claimed.id)
            if job.status == DELETED:
                return
            job.status, job.started = QUEUED, None
            self.waiting.appendleft(job)
            self._changed(job)

    def webhook_sent(self, job_id: str) -> None:
        pass  # one process: its webhooks end with it

    def eta_s(self, claimed: Claimed) -> float | None:
        with self.changed:
            job = self.running[claimed.id]
            return running_eta(time.monotonic() - (job.started or time.monotonic()), job.step, job.total)

    def health(self) -> dict[str, Any]:
        with self.changed:
            return {"store": self.name, "reachable": True, "waiting": len(self.waiting), "kept": len(self.jobs)}

    def counts(self) -> dict[str, int] | None:
        with self.changed:
            statuses = [job.status for job in self.jobs.values()]
        return {"queued": statuses.count(QUEUED), "running": statuses.count(RUNNING),
                "finished": sum(statuses.count(status) for status in FINISHED)}

    def close(self) -> None:
        pass

    # -- inside ------------------------------------------------------------------------------

    def _cancel(self, job: Job) -> None:
        if job.status == QUEUED:  # never starts
            self.waiting.remove(job)
            answer = cancelled_before_it_ran()
            _, body = final_answer(self._describe(job), CANCELLED, answer, self.config.max_bytes)
            self._finish(job, CANCELLED, body)
            metrics.answered("job", answer)
        elif job.status == RUNNING:  # stops at its next step
            job.cancel.set()
            self._changed(job)

    def _find(self, job_id: Any) -> Job:
        self._evict()
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise NotFound(UNKNOWN_JOB + ", in the memory of the replica that took them", field="job_id")
        return job

    def _describe(self, job: Job) -> dict[str, Any]:
        now = time.monotonic()
        position = eta = None
        if job.status == QUEUED:  # at most VIDEO_MAX_QUEUED to look through
            index = next((i for i, waiting in enumerate(self.waiting, start=1) if waiting is job), 1)
            position = index + self.requests_ahead()
            if self.seconds_per_job is not None:
                eta = self.seconds_per_job * position
        elif job.status == RUNNING:
            position = 0
            eta = running_eta(now - (job.started or now), job.step, job.total)
        return describe(job.id, job.status, job.step, job.total, position, (job.finished or now) - job.submitted,
                        eta, job.cancel.is_set(), {"request_id": job.request_id,
                                                   **({} if job.meta is None else {"meta": job.meta})})

    def _changed(self, job: Job) -> None:
        job.history.append(self._describe(job))
        self._wake(job)

    def _wake(self, job: Job) -> None:
        for wake in job.watchers:
            wake()
        self.changed.notify_all()

    def _finish(self, job: Job, status: str, body: bytes) -> None:
        """Publish the end (under the lock)."""
        job.status, job.finished, job.answer = status, time.monotonic(), body
        job.data = None  # the request (its image) is not kept
        self.finished[job.id] = job
        self.finished_bytes += len(body) + job.kept_bytes
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
            self._forget(oldest)

    def _forget(self, job: Job) -> None:
        """No longer kept: not found by id, nor by its idempotency key."""
        if self.finished.pop(job.id, None) is not None:
            self.finished_bytes -= len(job.answer or b"") + job.kept_bytes
        del self.jobs[job.id]
        if job.key is not None:
            self.keys.pop(job.key, None)
