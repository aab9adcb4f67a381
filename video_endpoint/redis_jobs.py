"""The job store every replica shares: Redis (VIDEO_JOB_STORE=redis://... or rediss://...).

Built on Redis Streams and a consumer group (docs/architecture.md says why, against saq, streaq
and arq): a submitted job is a hash plus one stream entry; a replica whose model is free takes an
entry (XREADGROUP), and the entry stays pending under its name while it runs. Its heartbeat
re-claims the entry (XCLAIM JUSTID) every third of VIDEO_JOB_LEASE_S; an entry idle longer than
the lease belongs to a replica that died, and the next replica with a free model claims it
(XAUTOCLAIM) and runs the job again from its stored request, seed included. The hash's `attempt`
fences everything a runner writes: a step, an end or a hand-back from an attempt that is not the
last one handed out changes nothing. The few multi-key changes are Lua scripts, so each is atomic.

Every call has a socket timeout: a Redis that does not answer makes job calls fail with
`Unavailable` (503) in seconds, never hang; the scheduler keeps asking and picks up again when
Redis returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from video_endpoint import metrics
from video_endpoint.errors import Busy, HandlerError, NotFound, Unavailable
from video_endpoint.jobs import (
    DELETED,
    FINISHED,
    QUEUED,
    RUNNING,
    UNKNOWN_JOB,
    Claimed,
    Idempotency,
    JobSettings,
    cancelled_before_it_ran,
    describe,
    final_answer,
    json_bytes,
    key_reused,
    replica_name,
    running_eta,
    status_of,
)

logger = logging.getLogger(__name__)

PREFIX = "video-endpoint:"
STREAM, GROUP = PREFIX + "jobs", "replicas"
QUEUED_SET = PREFIX + "queued"  # waiting job ids by submit time: a job's position is its rank
FINISHED_SET = PREFIX + "finished"  # ended job ids by end time: the oldest are evicted first
SIZES = PREFIX + "answer-bytes"  # ended job id -> its answer's length; the store's one byte budget
STATS = PREFIX + "stats"
LISTED = PREFIX + "listed"  # the ids of the jobs submitted with `meta`, by submit time
WEBHOOKS = PREFIX + "webhooks"  # ended job ids whose webhook is not delivered yet, by the lease of its delivery
HANDED_BACK = "handed-back"  # the consumer a stopping replica gives its job to: claimable at once
CALL_TIMEOUT_S = 2.0  # every Redis call: connecting, and waiting for its answer
POLL_S = 0.25  # an idle scheduler's and an event stream's look at the store


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def events_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:events"


_SUBMIT = """
-- KEYS: idempotency key, queued set, job hash, stream, listed set; ARGV: digest, id, payload, webhook, now,
-- max queued, key ttl ms, has key, meta ('' = none), kept ('' = none), request id
if ARGV[8] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {'existing', existing} end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return {'busy', redis.call('ZCARD', KEYS[2])} end
redis.call('HSET', KEYS[3], 'id', ARGV[2], 'payload', ARGV[3], 'webhook', ARGV[4], 'submitted', ARGV[5],
           'status', 'queued', 'attempt', 0, 'step', 0, 'request_id', ARGV[11])
if ARGV[8] == '1' then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[7])
  redis.call('HSET', KEYS[3], 'idem', KEYS[1])
end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[3], 'kept', ARGV[10]) end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[3], 'meta', ARGV[9])
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[2])
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
redis.call('XADD', KEYS[4], '*', 'id', ARGV[2])
return {'queued'}
"""

_START = """
-- KEYS: job hash, queued set; ARGV: replica, now, max attempts, id
local job = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'payload', 'webhook', 'submitted', 'handed',
                       'request_id')
if not job[1] then return {'gone'} end
if job[1] ~= 'queued' and job[1] ~= 'running' then return {'ended'} end
-- a hand-back (a replica stopping) is not a failed attempt; a lease that passed is
if tonumber(job[2]) - tonumber(job[6] or '0') >= tonumber(ARGV[3]) then return {'exhausted', job[2], job[1]} end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'replica', ARGV[1], 'started', ARGV[2], 'step', 0)
redis.call('HDEL', KEYS[1], 'total')
redis.call('ZREM', KEYS[2], ARGV[4])
return {'run', attempt, job[3], job[4], job[5], job[7] or ''}
"""

_PROGRESS = """
-- KEYS: job hash, events list; ARGV: attempt, step, total, event
local job = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'cancel')
if job[1] == 'deleted' or not job[1] then return 3 end
if job[1] ~= 'running' or job[2] ~= ARGV[1] then return 2 end
redis.call('HSET', KEYS[1], 'step', ARGV[2], 'total', ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[4])
if job[3] == '1' then return 1 end
return 0
"""

_END = """
-- KEYS: job hash, events list, queued set, finished set, sizes, stats, webhooks
-- ARGV: expected status, expected attempt ('' = any), status, body, now, keep ms, id, seconds run ('' = none),
-- the webhook delivery's lease ('' = no webhook for this end)
local job = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'idem', 'webhook')
if job[1] ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' and job[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'answer', ARGV[4], 'finished', ARGV[5])
redis.call('HDEL', KEYS[1], 'payload')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('RPUSH', KEYS[2], '')
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if job[3] then redis.call('PEXPIRE', job[3], ARGV[6]) end
redis.call('ZREM', KEYS[3], ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[7])
local size = #ARGV[4] + redis.call('HSTRLEN', KEYS[1], 'kept')  -- a kept request counts with the answer
redis.call('HSET', KEYS[5], ARGV[7], size)
redis.call('HINCRBY', KEYS[6], 'answer_bytes', size)
if ARGV[8] ~= '' then redis.call('HSET', KEYS[6], 'seconds_per_job', ARGV[8]) end
if ARGV[9] ~= '' and job[4] and job[4] ~= '' then redis.call('ZADD', KEYS[7], ARGV[9], ARGV[7]) end
return 1
"""

_ORPHAN_WEBHOOK = """
-- KEYS: webhooks; ARGV: now, the new lease; the first webhook whose delivery lease passed, now this replica's
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return false end
redis.call('ZADD', KEYS[1], ARGV[2], due[1])
return due[1]
"""

_EVICT = """
-- KEYS: finished set, sizes, stats, listed set; ARGV: oldest end time kept, max bytes, max kept, job key prefix
local evicted = 0
while true do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #oldest == 0 then break end
  local total = tonumber(redis.call('HGET', KEYS[3], 'answer_bytes') or '0')
  if tonumber(oldest[2]) >= tonumber(ARGV[1]) and total <= tonumber(ARGV[2])
     and redis.call('ZCARD', KEYS[1]) <= tonumber(ARGV[3]) then break end
  local size = tonumber(redis.call('HGET', KEYS[2], oldest[1]) or '0')
  redis.call('HINCRBY', KEYS[3], 'answer_bytes', -size)
  redis.call('HDEL', KEYS[2], oldest[1])
  redis.call('ZREM', KEYS[1], oldest[1])
  redis.call('ZREM', KEYS[4], oldest[1])
  local idem = redis.call('HGET', ARGV[4] .. oldest[1], 'idem')
  if idem then redis.call('DEL', idem) end
  redis.call('DEL', ARGV[4] .. oldest[1], ARGV[4] .. oldest[1] .. ':events')
  evicted = evicted + 1
end
return evicted
"""

_CANCEL = """
-- KEYS: job hash; marks a running job; answers its status
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1') end
return status
"""

_DELETE = """
-- KEYS: job hash, queued set, listed set, finished set, sizes, stats, events; ARGV: id, keep ms of a running one
-- A running job is marked (its runner stops at its next step, its end is not recorded), the rest is gone.
local job = redis.call('HMGET', KEYS[1], 'status', 'idem')
if not job[1] or job[1] == 'deleted' then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if job[2] then redis.call('DEL', job[2]) end
local size = redis.call('HGET', KEYS[5], ARGV[1])
if size then
  redis.call('HINCRBY', KEYS[6], 'answer_bytes', -tonumber(size))
  redis.call('HDEL', KEYS[5], ARGV[1])
end
redis.call('DEL', KEYS[7])
if job[1] == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'deleted', 'cancel', '1')
  redis.call('HDEL', KEYS[1], 'payload', 'meta', 'kept', 'answer', 'idem')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
"""

_HAND_BACK = """
-- KEYS: job hash, queued set, events list; ARGV: attempt, id, event
local job = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'submitted')
if job[1] ~= 'running' or job[2] ~= ARGV[1] then return 0 end  -- ended, or another attempt's now
redis.call('HSET', KEYS[1], 'status', 'queued', 'step', 0)
redis.call('HINCRBY', KEYS[1], 'handed', 1)
redis.call('HDEL', KEYS[1], 'replica', 'started', 'total')
redis.call('ZADD', KEYS[2], job[3], ARGV[2])
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
"""


class RedisJobStore:
    name = "redis"
    shared = True
    poll_interval_s: float | None = POLL_S

    def __init__(self, config: JobSettings, client: redis.Redis | None = None) -> None:
        self.config = config
        # Any: redis-py's types answer bytes | str for every reply; this client answers bytes
        self.client: Any = client or redis.Redis.from_url(config.store, socket_timeout=CALL_TIMEOUT_S,
                                                     socket_connect_timeout=CALL_TIMEOUT_S, retry_on_timeout=False)
        kwargs = self.client.connection_pool.connection_kwargs
        self.where = f"Redis at {kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        self.replica = replica_name()
        self.wake: Callable[[], None] = lambda: None
        self.scripts = {name: self.client.register_script(source) for name, source in (
            ("submit", _SUBMIT), ("start", _START), ("progress", _PROGRESS), ("end", _END), ("evict", _EVICT),
            ("cancel", _CANCEL), ("hand_back", _HAND_BACK), ("orphan_webhook", _ORPHAN_WEBHOOK),
            ("delete", _DELETE))}
        self.running: dict[str, str] = {}  # job id -> its stream entry, for the jobs running here
        self.delivering: set[str] = set()  # the jobs whose webhook this replica is sending
        self.orphan_webhook: Callable[[str, str, bytes, str], None] | None = None
        self.lock = threading.Lock()
        self.group_ready = False
        self.was_down = False
        self.stopped = threading.Event()
        self.heartbeat = threading.Thread(target=self._beat, name="video-job-heartbeat", daemon=True)
        self.heartbeat.start()

    @contextmanager
    def _calls(self) -> Iterator[None]:
        """Redis errors as `Unavailable`, naming the store."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            metrics.JOB_STORE_ERRORS.inc()
            raise Unavailable(f"the job store ({self.where}, VIDEO_JOB_STORE) is not answering: jobs cannot be "
                              f"submitted or polled now; retry later ({type(exc).__name__})", field=None) from None
        except redis.ResponseError as exc:  # e.g. a password refused, a read-only replica
            metrics.JOB_STORE_ERRORS.inc()
            raise Unavailable(f"the job store ({self.where}, VIDEO_JOB_STORE) refused a call: "
                              f"{str(exc)[:200]}", field=None) from None

    def _ensure_group(self) -> None:
        if self.group_ready:
            return
        try:
            self.client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self.group_ready = True

    # -- the routes' side --------------------------------------------------------------------

    def submit(self, payload: Any, webhook: str | None, held_bytes: int = 0,
               idempotency: Idempotency | None = None, meta: dict[str, Any] | None = None,
               kept: Any = None, request_id: str = "") -> dict[str, Any]:
        job_id = secrets.token_urlsafe(18)
        with self._calls():
            self._ensure_group()
            self._evict()
            kept_ms = int(max(self.config.ttl_s, 86400) * 1000)  # until it ends; then VIDEO_JOB_TTL_S
            outcome = self.scripts["submit"](
                keys=[PREFIX + "idempotency:" + (idempotency.key if idempotency else ""), QUEUED_SET,
                      job_key(job_id), STREAM, LISTED],
                args=[idempotency.digest if idempotency else "", job_id, json.dumps(payload), webhook or "",
                      repr(time.time()), self.config.max_queued, kept_ms, "1" if idempotency else "0",
                      json.dumps(meta) if meta is not None else "", json.dumps(kept) if kept is not None else "",
                      request_id])
            kind = outcome[0].decode()
            if kind == "busy":
                raise Busy(f"busy: {int(outcome[1])} jobs are waiting in the job store (VIDEO_MAX_QUEUED); "
                           "retry later", field=None)
            if kind == "existing":
                digest, _, job_id = outcome[1].decode().partition(" ")
                if idempotency is None or digest != idempotency.digest:
                    raise key_reused()
            described = json.loads(self.status_json(job_id))
        if kind == "queued":
            self.wake()
        return {"ok": True, "job": described["job"]}

    def status_json(self, job_id: Any, cancel: bool = False) -> bytes:
        if not isinstance(job_id, str) or not 1 <= len(job_id) <= 64:
            raise NotFound(UNKNOWN_JOB, field="job_id")
        with self._calls():
            if cancel:
                self._cancel(job_id)
            fields = self.client.hgetall(job_key(job_id))
            if not fields or fields.get(b"status") in (None, DELETED.encode()):
                raise NotFound(UNKNOWN_JOB, field="job_id")
            return self._answer(job_id, fields)

    def _answer(self, job_id: str, fields: dict[bytes, bytes]) -> bytes:
        if fields.get(b"answer"):
            return bytes(fields[b"answer"])
        return json_bytes({"ok": True, "job": self._describe(job_id, fields)})

    def kept(self, job_id: Any) -> Any:
        if not isinstance(job_id, str) or not 1 <= len(job_id) <= 64:
            raise NotFound(UNKNOWN_JOB, field="job_id")
        with self._calls():
            status, kept = self.client.hmget(job_key(job_id), "status", "kept")
        if status in (None, DELETED.encode()):
            raise NotFound(UNKNOWN_JOB, field="job_id")
        return json.loads(kept) if kept else None

    def delete(self, job_id: Any) -> None:
        if not isinstance(job_id, str) or not 1 <= len(job_id) <= 64:
            raise NotFound(UNKNOWN_JOB, field="job_id")
        with self._calls():
            deleted = self.scripts["delete"](
                keys=[job_key(job_id), QUEUED_SET, LISTED, FINISHED_SET, SIZES, STATS, events_key(job_id)],
                args=[job_id, int(self.config.lease_s * 3000) + 60_000])
        if not deleted:
            raise NotFound(UNKNOWN_JOB, field="job_id")

    def listed(self, after: str | None, limit: int, newest_first: bool) -> tuple[list[bytes], bool]:
        with self._calls():
            self._evict()
            start = 0
            if after is not None:
                rank = (self.client.zrevrank if newest_first else self.client.zrank)(LISTED, after)
                if rank is None:
                    raise NotFound(UNKNOWN_JOB, field="after")
                start = rank + 1
            while True:
                window = (self.client.zrevrange if newest_first else self.client.zrange)(LISTED, start,
                                                                                         start + limit)
                pipe = self.client.pipeline(transaction=False)
                for job_id in window:
                    pipe.hgetall(job_key(job_id.decode()))
                kept = list(zip(window, pipe.execute(), strict=True))
                gone = [job_id for job_id, fields in kept if not fields]
                if not gone:  # else: expired meanwhile, off the list; read the window again
                    break
                self.client.zrem(LISTED, *gone)
            page = [self._answer(job_id.decode(), fields) for job_id, fields in kept[:limit]]
            return page, len(kept) > limit

    def events(self, job_id: Any, seen: int) -> tuple[list[dict[str, Any]], bool]:
        if not isinstance(job_id, str):
            raise NotFound(UNKNOWN_JOB, field="job_id")
        with self._calls():
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(job_key(job_id), "status")
            pipe.lrange(events_key(job_id), seen, -1)
            status, changes = pipe.execute()
        if status in (None, DELETED.encode()):
            raise NotFound(UNKNOWN_JOB, field="job_id")
        return [json.loads(change) for change in changes if change], status.decode() in FINISHED

    def watch(self, job_id: Any, wake: Callable[[], None]) -> None:
        self.events(job_id, 0)  # an unknown id is refused here; changes are found by polling (`POLL_S`)

    def unwatch(self, job_id: Any, wake: Callable[[], None]) -> None:
        pass

    # -- the scheduler's side ----------------------------------------------------------------

    def take(self) -> Claimed | None:
        """The next job for this replica, whose model is free: first one a dead or stopping
        replica left (its lease passed), else a new one."""
        with self._calls():
            try:
                return self._take()
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self.group_ready = False  # a Redis that came back empty: the group is made again
                return self._take()

    def _take(self) -> Claimed | None:
        self._ensure_group()
        lease_ms = int(self.config.lease_s * 1000)
        while True:
            _, entries, *_ = self.client.xautoclaim(STREAM, GROUP, self.replica, lease_ms, "0-0", count=1)
            if not entries:
                read = self.client.xreadgroup(GROUP, self.replica, {STREAM: ">"}, count=1)
                entries = read[0][1] if read else []
            if not entries:
                return None
            entry_id, fields = entries[0]
            claimed = self._start(entry_id, fields[b"id"].decode())
            if claimed is not None:
                return claimed

    def _start(self, entry_id: bytes, job_id: str) -> Claimed | None:
        outcome = self.scripts["start"](keys=[job_key(job_id), QUEUED_SET],
                                        args=[self.replica, repr(time.time()), self.config.max_attempts, job_id])
        kind = outcome[0].decode()
        if kind == "exhausted":
            attempts = int(outcome[1])
            logger.error("job %s: its replica stopped while running it %d times (VIDEO_JOB_MAX_ATTEMPTS); failed",
                         job_id, attempts)
            error = HandlerError(
                f"the job was started {attempts} times and each time the replica running it stopped (killed, out "
                "of memory, or scaled down) before it ended (VIDEO_JOB_MAX_ATTEMPTS); it is not run again")
            self._end(job_id, outcome[2].decode(), str(attempts), error.envelope(), None, webhook=True)
        if kind != "run":
            self._forget(entry_id)
            return None
        attempt, payload, webhook, submitted = int(outcome[1]), outcome[2], outcome[3].decode(), float(outcome[4])
        claimed = Claimed(job_id, attempt, json.loads(payload), webhook or None, submitted_at=submitted,
                          request_id=outcome[5].decode())
        with self.lock:
            self.running[job_id] = entry_id.decode()
        self.client.rpush(events_key(job_id), json.dumps(self._running_description(claimed, 0, None)))
        return claimed

    def progress(self, claimed: Claimed, step: int, total: int) -> bool:
        """Record a step; whether to stop (a cancel, or another replica has the job now)."""
        event = json.dumps(self._running_description(claimed, step, total))
        try:
            with self._calls():
                outcome = self.scripts["progress"](keys=[job_key(claimed.id), events_key(claimed.id)],
                                                   args=[claimed.attempt, step, total, event])
        except Unavailable:
            return False  # the store is away: the job goes on, its lease runs from the last heartbeat
        if outcome == 2:  # 3: deleted
            logger.warning("job %s: attempt %d is no longer the job's (its lease passed); stopping it", claimed.id,
                           claimed.attempt)
        return bool(outcome)

    def finish(self, claimed: Claimed, answer: dict[str, Any]) -> bytes | None:
        """Record the end, fenced by the attempt; the answer as kept, or None when this attempt is
        no longer the job's (another replica runs it: it records the end)."""
        seconds = time.monotonic() - claimed.started
        deadline = time.monotonic() + self.config.lease_s
        while True:  # a store that is away for a moment: the answer waits for it, up to a lease
            try:
                with self._calls():
                    body = self._end(claimed.id, RUNNING, str(claimed.attempt), answer, seconds,
                                     webhook=claimed.webhook is not None)
                break
            except Unavailable:
                if time.monotonic() > deadline:
                    logger.error("job %s: the job store did not come back; its answer is dropped (the job runs "
                                 "again once its lease passes)", claimed.id)
                    return None
                time.sleep(0.5)
        entry = self._release(claimed.id)
        if entry is not None:
            with self._calls():
                self._forget(entry.encode())
        if body is not None and claimed.webhook is not None:
            with self.lock:  # its delivery heartbeats until `webhook_sent`
                self.delivering.add(claimed.id)
        return body

    def webhook_sent(self, job_id: str) -> None:
        """The job's webhook was delivered, or given up for good: no replica sends it again."""
        with self.lock:
            self.delivering.discard(job_id)
        with contextlib.suppress(redis.RedisError):  # else: sent again once its lease passes (at least once)
            self.client.zrem(WEBHOOKS, job_id)

    def hand_back(self, claimed: Claimed) -> None:
        """This replica stops: the job waits again, claimable at once by any replica."""
        entry = self._release(claimed.id)
        with self._calls():
            submitted = float(self.client.hget(job_key(claimed.id), "submitted") or 0)
            event = json.dumps(describe(claimed.id, QUEUED, 0, None, None, time.time() - submitted, None, False,
                                        {"request_id": claimed.request_id}))
            if self.scripts["hand_back"](keys=[job_key(claimed.id), QUEUED_SET, events_key(claimed.id)],
                                         args=[claimed.attempt, claimed.id, event]) and entry is not None:
                idle_ms = int(self.config.lease_s * 1000) + 1
                self.client.xclaim(STREAM, GROUP, HANDED_BACK, 0, [entry], idle=idle_ms, justid=True)
        logger.info("job %s: handed back by replica %s", claimed.id, self.replica)

    def eta_s(self, claimed: Claimed) -> float | None:
        with self._calls():
            step, total = self.client.hmget(job_key(claimed.id), "step", "total")
        return running_eta(time.monotonic() - claimed.started, int(step or 0), int(total) if total else None)

    def health(self) -> dict[str, Any]:
        try:
            with self._calls():
                waiting = self.client.zcard(QUEUED_SET)
        except Unavailable as exc:
            return {"store": self.name, "reachable": False, "error": exc.message}
        return {"store": self.name, "reachable": True, "waiting": waiting, "replica": self.replica}

    def counts(self) -> dict[str, int] | None:
        """Running: the stream entries a replica holds (a dead replica's until another claims them)."""
        try:
            with self._calls():
                self._ensure_group()
                calls = self.client.pipeline(transaction=False)
                calls.zcard(QUEUED_SET).xpending(STREAM, GROUP).zcard(FINISHED_SET)
                queued, pending, finished = calls.execute()
        except Unavailable:
            return None
        return {"queued": queued, "running": pending["pending"], "finished": finished}

    def close(self) -> None:
        """Stop the heartbeat; this replica leaves the consumer group when it holds no job."""
        self.stopped.set()
        with self.lock:
            holding = bool(self.running)
        if not holding:
            with contextlib.suppress(redis.RedisError):
                self.client.xgroup_delconsumer(STREAM, GROUP, self.replica)

    # -- inside ------------------------------------------------------------------------------

    def _end(self, job_id: str, expected: str, attempt: str, answer: dict[str, Any], seconds: float | None,
             webhook: bool = False) -> bytes | None:
        """Record the job's end if it is still `expected` (and `attempt`'s); `webhook`: its webhook
        (if it has one) is pending until `webhook_sent`, and another replica sends it when the lease
        of its delivery passes."""
        fields = self.client.hgetall(job_key(job_id))
        if not fields:
            return None
        status, body = final_answer(self._describe(job_id, fields), status_of(answer), answer, self.config.max_bytes)
        recorded = self.scripts["end"](
            keys=[job_key(job_id), events_key(job_id), QUEUED_SET, FINISHED_SET, SIZES, STATS, WEBHOOKS],
            args=[expected, attempt, status, body, repr(time.time()), int(self.config.ttl_s * 1000) + 60_000, job_id,
                  "" if seconds is None else repr(seconds),
                  repr(time.time() + self.config.lease_s) if webhook else ""])
        if not recorded:
            return None
        self._evict()
        return body

    def _cancel(self, job_id: str) -> None:
        for _ in range(3):  # a queued job may be taken meanwhile: then it is running, and marked
            status = self.scripts["cancel"](keys=[job_key(job_id)])
            if status is None or status.decode() != QUEUED:
                return
            answer = cancelled_before_it_ran()
            if self._end(job_id, QUEUED, "", answer, None) is not None:
                metrics.answered("job", answer)
                return

    def _evict(self) -> None:
        self.scripts["evict"](keys=[FINISHED_SET, SIZES, STATS, LISTED],
                              args=[repr(time.time() - self.config.ttl_s), self.config.max_bytes,
                                    self.config.max_kept, PREFIX + "job:"])

    def _forget(self, entry_id: bytes) -> None:
        self.client.xack(STREAM, GROUP, entry_id)
        self.client.xdel(STREAM, entry_id)

    def _release(self, job_id: str) -> str | None:
        with self.lock:
            return self.running.pop(job_id, None)

    def _describe(self, job_id: str, fields: dict[bytes, bytes]) -> dict[str, Any]:
        def text(name: str) -> str:
            return fields.get(name.encode(), b"").decode()

        now, status = time.time(), text("status")
        submitted = float(text("submitted") or now)
        step, total = int(text("step") or 0), int(text("total")) if text("total") else None
        position = eta = None
        extra: dict[str, Any] = {"request_id": text("request_id"), "attempt": int(text("attempt") or 0)}
        if fields.get(b"meta"):
            extra["meta"] = json.loads(fields[b"meta"])
        if status == QUEUED:
            rank = self.client.zrank(QUEUED_SET, job_id)
            position = (rank or 0) + 1
            per_job = self.client.hget(STATS, "seconds_per_job")
            eta = float(per_job) * position if per_job else None
        elif status == RUNNING:
            position = 0
            eta = running_eta(now - float(text("started") or now), step, total)
            extra["replica"] = text("replica")
        elapsed = float(text("finished") or now) - submitted
        return describe(job_id, status, step, total, position, elapsed, eta, text("cancel") == "1", extra)

    def _running_description(self, claimed: Claimed, step: int, total: int | None) -> dict[str, Any]:
        elapsed = time.monotonic() - claimed.started
        return describe(claimed.id, RUNNING, step, total, 0, time.time() - claimed.submitted_at,
                        running_eta(elapsed, step, total),
                        False, {"request_id": claimed.request_id, "attempt": claimed.attempt,
                                "replica": self.replica})

    def _beat(self) -> None:
        """Every third of a lease: re-claim the entries of the jobs running here (their idle time
        starts again, so no other replica takes them), extend the leases of the webhooks this
        replica sends, and send one a dead replica left."""
        while not self.stopped.wait(self.config.lease_s / 3):
            with self.lock:
                entries, delivering = list(self.running.values()), list(self.delivering)
            try:
                if entries:
                    self.client.xclaim(STREAM, GROUP, self.replica, 0, entries, justid=True)
                lease = time.time() + self.config.lease_s
                if delivering:
                    self.client.zadd(WEBHOOKS, dict.fromkeys(delivering, lease), xx=True)
                if self.orphan_webhook is not None:
                    self._send_orphan_webhook(lease)
                if self.was_down:
                    logger.info("the job store is answering again")
                self.was_down = False
            except redis.RedisError as exc:
                if not self.was_down:
                    logger.warning("heartbeat to the job store failed (%s); the running job goes on",
                                   type(exc).__name__)
                self.was_down = True

    def _send_orphan_webhook(self, lease: float) -> None:
        job_id = self.scripts["orphan_webhook"](keys=[WEBHOOKS], args=[repr(time.time()), repr(lease)])
        if not job_id:
            return
        job_id = job_id.decode()
        url, body, request_id = self.client.hmget(job_key(job_id), "webhook", "answer", "request_id")
        if not url or not body:  # evicted meanwhile
            self.client.zrem(WEBHOOKS, job_id)
            return
        logger.info("job %s: its webhook was not sent by the replica that ended it; sending it", job_id)
        with self.lock:
            self.delivering.add(job_id)
        assert self.orphan_webhook is not None
        self.orphan_webhook(url.decode(), job_id, bytes(body), (request_id or b"").decode())
