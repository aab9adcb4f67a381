"""The one queue in front of the model: every door (a handler call, the local server's `POST /`,
jobs from the job store) goes through a `Scheduler`, whose one worker thread runs generations one
at a time.

Synchronous requests (a client holds a connection for each) go first, in arrival order; the
server's VIDEO_QUEUE_DEPTH bounds how many wait. When none waits, the worker takes the next job
from the job store: a job is only ever taken by a replica whose model is free. A job's position
counts the synchronous requests ahead of it. A client that hangs up and a cancel set the same event:
a waiting entry never starts, a running one stops at its next step.

The model never waits for an encoder: once the frames of request k are generated, its encoding
(and, for a job, its uploads, its recorded end and its webhook) goes to threads of its own while the
worker starts request k+1. At most `ANSWERS_IN_HAND` generated answers wait for their encoder; past
that the worker waits (each holds its frames in memory).
"""

from __future__ import annotations

import logging
import threading
import time
import typing
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipelines.base import StepCallback
from video_endpoint import metrics, server_logs
from video_endpoint.errors import Busy, Cancelled, HandlerError, Unavailable
from video_endpoint.jobs import Claimed, JobStore, internal_error, status_of
from video_endpoint.stages import Decoded, Produced
from video_endpoint.webhooks import WebhookSender

logger = logging.getLogger(__name__)

ANSWERS_IN_HAND = 2  # generated answers waiting for (or in) their encoding, at most
JOB_ENDERS = 2  # threads that upload a job's outputs and record its end: a slow store holds no generation


@dataclass
class Entry:
    """One generation waiting for, or on, the model."""

    decoded: Decoded | None
    """a synchronous request's decoded body; a job's is decoded when it starts"""
    on_step: StepCallback | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    """set: the client hung up, or the job was cancelled; it never starts or stops at its next step"""
    done: Future[Produced] = field(default_factory=Future)
    """a synchronous request's answer (its uploads still to do: `EndpointHandler.deliver`)"""
    claimed: Claimed | None = None
    """a job: what the store handed out"""
    hand_back: bool = False
    """set when this replica stops: the job stops at its next step and goes back to the store"""
    label: str = "request"
    queued_at: float = field(default_factory=time.perf_counter)
    waited_s: float | None = None
    """how long it waited for the model (a job: since it was submitted), once started"""

    @property
    def request_id(self) -> str:
        if self.claimed is not None:
            return self.claimed.request_id
        return self.decoded.request_id if self.decoded is not None else ""

    def log_ids(self) -> dict[str, Any]:
        return job_ids(self.claimed) if self.claimed is not None else server_logs.ids(self.request_id)


def job_ids(claimed: Claimed) -> dict[str, Any]:
    """A job's log line's ids (`server_logs.ids`)."""
    return server_logs.ids(claimed.request_id, claimed.id, claimed.attempt)


class ModelSide(Protocol):
    """What the scheduler asks of the handler (`EndpointHandler`)."""

    def generate_frames(self, decoded: Decoded, on_step: StepCallback | None = None) -> Callable[[], Produced]:
        """Generate (needs the model); never raises. Returns the encoding still to do."""

    def decode(self, data: Any, cancelled: threading.Event | None = None, request_id: str | None = None) -> Decoded: ...

    def deliver(self, produced: Produced) -> dict[str, Any]: ...


class Scheduler:
    def __init__(self, handler: ModelSide, store: JobStore, webhooks: WebhookSender,
                 overlap_encoding: bool = True) -> None:
        """`overlap_encoding` False: the worker encodes each answer itself before the next one (as
        before the scheduler; the benchmark's baseline)."""
        self.handler, self.store, self.webhooks = handler, store, webhooks
        self.overlap_encoding = overlap_encoding
        store.wake = self.wake
        store.orphan_webhook = self._send_webhook  # a shared store's webhook that a dead replica did not send
        self.changed = threading.Condition()
        self.requests: deque[Entry] = deque()
        self.admitted = 0  # synchronous requests let in: decoding, waiting or generating
        self.current: Entry | None = None
        self.woken = False
        self.stopping = False
        self.in_hand = threading.BoundedSemaphore(ANSWERS_IN_HAND)
        self.encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-encode")
        self.job_enders = ThreadPoolExecutor(max_workers=JOB_ENDERS, thread_name_prefix="video-job-end")
        self.jobs_in_hand: dict[str, Claimed] = {}  # taken jobs whose end is not recorded yet
        self.store_down = False
        self.recent_seconds = 5.0  # the last generation's time, for Retry-After
        self.worker: threading.Thread | None = None

    def start(self) -> None:
        """The worker thread; started with the first request or job, or at once where jobs come
        from a store other replicas fill."""
        with self.changed:
            if self.worker is None and not self.stopping:
                self.worker = threading.Thread(target=self._work, name="video-model", daemon=True)
                self.worker.start()

    # -- the doors ---------------------------------------------------------------------------

    def admit(self, limit: int) -> None:
        """Count a synchronous request in (before its inputs are decoded), or refuse it `busy`
        when `limit` requests are already waiting behind the running one. `leave` counts it out."""
        with self.changed:
            if self.admitted > limit:
                retry = max(1, round(self.recent_seconds * self.admitted))
                raise Busy(f"busy: {self.admitted} requests ahead; retry in {retry} s", field=None,
                           retry_after_s=retry)
            self.admitted += 1

    def leave(self) -> None:
        with self.changed:
            self.admitted -= 1

    def submit(self, decoded: Decoded, on_step: StepCallback | None = None,
               cancel: threading.Event | None = None) -> Future[Produced]:
        """Queue a synchronous request; its future holds the answer (never an exception)."""
        entry = Entry(decoded, on_step, cancel or threading.Event())
        self.start()
        with self.changed:
            self.requests.append(entry)
            self.changed.notify_all()
        return entry.done

    def run(self, decoded: Decoded, on_step: StepCallback | None = None) -> Produced:
        """A synchronous request, waited for."""
        return self.submit(decoded, on_step).result()

    def wake(self) -> None:
        """A job was submitted to the store."""
        self.start()
        with self.changed:
            self.woken = True
            self.changed.notify_all()

    def requests_ahead(self) -> int:
        """Synchronous requests waiting or running: a queued job comes after them."""
        with self.changed:
            running = self.current is not None and self.current.claimed is None
            return len(self.requests) + running

    def describe(self) -> dict[str, Any]:
        with self.changed:
            current = self.current
            return {"waiting": len(self.requests), "admitted": self.admitted,
                    "running": None if current is None else ("job" if current.claimed else "request")}

    def stop(self, grace_s: float) -> None:
        """Stop taking work. The running job is finished when it will end within `grace_s`; else it
        goes back to the store at once (and stops at its next step here), as do the jobs still
        encoding or uploading when the grace has passed: another replica takes them right away."""
        with self.changed:
            self.stopping = True
            self.changed.notify_all()
            current = self.current
        deadline = time.monotonic() + grace_s
        if current is not None and current.claimed is not None:
            try:
                eta = self.store.eta_s(current.claimed)
            except HandlerError:
                eta = None
            if eta is None or eta > grace_s:
                logger.info("%s: this replica is stopping and %s: handed back (request %s)", current.label,
                            "it has no estimate yet" if eta is None else
                            f"it needs {eta:.0f} s more (VIDEO_SHUTDOWN_GRACE_S {grace_s:g})",
                            current.claimed.request_id, extra=job_ids(current.claimed))
                current.hand_back = True
                current.cancel.set()
                self._hand_back(current.claimed)
        if self.worker is not None:
            self.worker.join(max(0.0, deadline - time.monotonic()))
        with self.changed:  # the jobs still ending, within the grace
            while self.jobs_in_hand and time.monotonic() < deadline:
                self.changed.wait(max(0.01, deadline - time.monotonic()))
            left = list(self.jobs_in_hand.values())
        for claimed in left:
            logger.info("job %s: not ended within VIDEO_SHUTDOWN_GRACE_S: handed back (request %s)", claimed.id,
                        claimed.request_id, extra=job_ids(claimed))
            self._hand_back(claimed)
        self.store.close()

    def _hand_back(self, claimed: Claimed) -> None:
        try:
            self.store.hand_back(claimed)
            metrics.JOB_HANDBACKS.inc()
        except HandlerError as exc:
            logger.warning("job %s: could not be handed back (%s); it runs again once its lease passes (request %s)",
                           claimed.id, exc.message, claimed.request_id, extra=job_ids(claimed))

    # -- the worker --------------------------------------------------------------------------

    def _work(self) -> None:
        entry, stopped = None, False
        try:
            while (entry := self._next()) is not None:
                try:
                    self._generate(entry)
                except Exception:  # the handler answers its errors itself: a last resort
                    logger.exception("the model's worker caught an unexpected error")
                    self._answer_failed(entry)
                entry = None
            stopped = True
        finally:  # only what no handler catches (SystemExit in a library) ends the loop otherwise
            if not stopped:
                logger.error("the model's worker stopped; starting another")
                if entry is not None:
                    self._answer_failed(entry)
                with self.changed:
                    self.current = None
                    self.worker = None
                self.start()

    def _answer_failed(self, entry: Entry) -> None:
        """The entry the worker held when something unexpected stopped it: answered `internal`."""
        failed = self._internal_error()
        if entry.claimed is not None:
            self._end_later(entry, failed.result, time.perf_counter())
        elif not entry.done.done():
            entry.done.set_result(failed)

    @staticmethod
    def _internal_error() -> Produced:
        return Produced(internal_error())

    def _next(self) -> Entry | None:
        """The next synchronous request, else the next job from the store, else wait."""
        while True:
            with self.changed:
                while self.requests:
                    entry = self.requests.popleft()
                    if entry.cancel.is_set():  # hung up while waiting: never starts
                        entry.done.set_result(self._cancelled("the client disconnected before it started"))
                        continue
                    entry.waited_s = time.perf_counter() - entry.queued_at
                    self.current = entry
                    return entry
                if self.stopping:
                    return None
            claimed = self._take()
            if claimed is not None and self.stopping:  # taken as this replica began to stop: for another
                self._hand_back(claimed)
                return None
            with self.changed:
                if claimed is not None:
                    self.jobs_in_hand[claimed.id] = claimed
                    waited_s = time.time() - claimed.submitted_at if claimed.submitted_at else None
                    self.current = Entry(None, claimed=claimed, label=f"job {claimed.id}", waited_s=waited_s)
                    metrics.JOB_ATTEMPTS.inc()
                    if claimed.attempt > 1:
                        metrics.JOB_REQUEUES.inc()
                    logger.info("job %s: attempt %d on replica %s (request %s)", claimed.id, claimed.attempt,
                                self.store.replica, claimed.request_id, extra=job_ids(claimed))
                    return self.current
                if not (self.requests or self.woken or self.stopping):
                    self.changed.wait(self.store.poll_interval_s)
                self.woken = False

    def _take(self) -> Claimed | None:
        try:
            claimed = self.store.take()
        except Unavailable as exc:
            if not self.store_down:
                logger.warning("%s", exc.message)
            self.store_down = True
            return None
        if self.store_down:
            logger.info("the job store is answering again")
        self.store_down = False
        return claimed

    def _generate(self, entry: Entry) -> None:
        started = time.perf_counter()
        if entry.claimed is not None:
            try:
                entry.decoded = self._job_request(entry.claimed)
            except HandlerError as exc:
                self._end_later(entry, exc.envelope(), started)
                return

        def on_step(done: int, total: int) -> None:
            if entry.claimed is not None:
                logger.info("%s: step %d/%d (%.1f s, attempt %d, request %s)", entry.label, done, total,
                            time.perf_counter() - started, entry.claimed.attempt, entry.claimed.request_id,
                            extra=job_ids(entry.claimed))
                if self.store.progress(entry.claimed, done, total):
                    entry.cancel.set()
            if entry.on_step is not None:
                entry.on_step(done, total)
            if entry.cancel.is_set():
                reason = "this replica is stopping" if entry.hand_back else "cancelled"
                raise Cancelled(f"{reason} at step {done} of {total}", field=None)

        assert entry.decoded is not None
        encode = self.handler.generate_frames(entry.decoded, on_step)
        self.recent_seconds = time.perf_counter() - started
        if not self.overlap_encoding:
            self._finish(entry, encode, started)
            return
        self.in_hand.acquire()
        with self.changed:
            self.current = None
        self.encoder.submit(self._finish, entry, encode, started)

    def _finish(self, entry: Entry, encode: Callable[[], Produced], started: float) -> None:
        try:
            produced = encode()
        except Exception:  # the handler's encoding answers its errors itself: a last resort
            logger.exception("%s: encoding failed unexpectedly (request %s)", entry.label, entry.request_id,
                             extra=entry.log_ids())
            produced = self._internal_error()
        finally:
            if self.overlap_encoding:
                self.in_hand.release()
            with self.changed:
                if self.current is entry:
                    self.current = None
        produced.waited_s = entry.waited_s
        if entry.claimed is None:
            entry.done.set_result(produced)
        else:
            self.job_enders.submit(self._end_job, entry, produced, started)

    def _job_request(self, claimed: Claimed) -> Decoded:
        if not self.store.shared:  # kept in memory as decoded when it was submitted
            return typing.cast(Decoded, claimed.payload)
        return self.handler.decode(claimed.payload, request_id=claimed.request_id)  # a body from the shared store

    def _end_later(self, entry: Entry, answer: dict[str, Any], started: float) -> None:
        with self.changed:
            self.current = None
        self.job_enders.submit(self._end_job, entry, Produced(answer, waited_s=entry.waited_s), started)

    def _end_job(self, entry: Entry, produced: Produced, started: float) -> None:
        claimed = entry.claimed
        assert claimed is not None
        try:
            answer = self.handler.deliver(produced)
            if entry.hand_back and not answer.get("ok"):
                return  # handed back when this replica began to stop
            body = self.store.finish(claimed, answer)
            status = status_of(answer)
            if body is None:
                logger.warning("%s: attempt %d ended (%s) after the job was deleted or another replica took it; "
                               "not recorded (request %s)", entry.label, claimed.attempt, status, claimed.request_id,
                               extra=job_ids(claimed))
                return
            metrics.answered("job", answer, produced)
            summary = status if answer.get("ok") else f"{status}: {answer['error']['type']}"
            prompt = entry.decoded.request.prompt if entry.decoded is not None else None
            logger.info("%s: %s after %.2f s (attempt %d, request %s)", entry.label, summary,
                        time.perf_counter() - started, claimed.attempt, claimed.request_id,
                        extra={**job_ids(claimed), **server_logs.finished("job", answer, produced.mode, prompt)})
            if claimed.webhook is not None:
                self._send_webhook(claimed.webhook, claimed.id, body, claimed.request_id)
        except Exception:
            logger.exception("%s: its end could not be recorded; it runs again when its lease passes (request %s)",
                             entry.label, claimed.request_id, extra=job_ids(claimed))
        finally:
            with self.changed:
                self.jobs_in_hand.pop(claimed.id, None)
                self.changed.notify_all()

    def _send_webhook(self, url: str, job_id: str, body: bytes, request_id: str) -> None:
        self.webhooks.deliver_later(url, job_id, body, done=self.store.webhook_sent, request_id=request_id)

    @staticmethod
    def _cancelled(message: str) -> Produced:
        return Produced(Cancelled(message, field=None).envelope())
