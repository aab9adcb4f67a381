"""A job's webhook: its URL checked against the operator's hosts, its body signed, its delivery.

Kept apart from the job stores: a store records a job's end once (`jobs`, `redis_jobs`), and the
replica whose end was recorded hands the answer to its `WebhookSender`. Receivers drop duplicates
by `X-Video-Job-Id`, the delivery's stable id (the job id): a replica that dies while delivering
leaves the job's end recorded, so a webhook is sent at most once per recorded end, and at least
once whenever the receiver answers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from video_endpoint import metrics
from video_endpoint.errors import InvalidRequest
from video_endpoint.http_url import BadUrl, HttpTarget, parse_allowed_url, send, send_with_retries

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Video-Signature"  # "sha256=<hex HMAC-SHA256 of '<timestamp>.<body>'>"
TIMESTAMP_HEADER = "X-Video-Timestamp"  # unix seconds when the webhook was signed
REQUEST_ID_HEADER = "X-Request-Id"  # the request that submitted the job: one id across replicas and logs
DELIVERY_HEADER = "X-Video-Job-Id"  # the delivery's stable id: the same on every attempt and replica
WEBHOOK_TIMEOUT_S = 10.0  # per attempt: connecting, and waiting for the receiver's answer
WEBHOOK_SENDERS = 2  # threads that deliver webhooks: a slow receiver never adds threads


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


class WebhookSender:
    """Checks webhook URLs when a job is submitted and delivers final answers on a few threads."""

    def __init__(self, hosts: tuple[str, ...], secret: str) -> None:
        self.hosts, self.secret = hosts, secret
        self.threads = ThreadPoolExecutor(max_workers=WEBHOOK_SENDERS, thread_name_prefix="video-webhook")

    def check(self, url: Any) -> HttpTarget:
        if not self.hosts or not self.secret:
            raise InvalidRequest("webhooks are off on this server (VIDEO_WEBHOOK_HOSTS and VIDEO_WEBHOOK_SECRET)",
                                 field="webhook")
        return parse_webhook(url, self.hosts)

    def deliver_later(self, url: str, job_id: str, body: bytes, done: Callable[[str], None] | None = None,
                      request_id: str = "") -> None:
        """Send `body` to `url` (checked when the job was submitted) on a sender thread; then
        `done(job_id)`, delivered or given up. `request_id`: the submitting request's, in X-Request-Id."""
        self.threads.submit(self._deliver, url, job_id, body, done, request_id)

    def _deliver(self, url: str, job_id: str, body: bytes, done: Callable[[str], None] | None,
                 request_id: str) -> None:
        delivered = False
        try:
            delivered = self.send(self.check(url), job_id, body, request_id=request_id)
        except Exception:  # a sender thread outlives any one delivery
            logger.exception("webhook for job %s failed", job_id)
        finally:
            metrics.WEBHOOKS.labels("delivered" if delivered else "failed").inc()
            if done is not None:
                done(job_id)

    def send(self, target: HttpTarget, job_id: str, body: bytes, attempts: int = 3, request_id: str = "") -> bool:
        """POST the final answer, signed. Tried again only when the receiver was not reached or
        answered 5xx: once the body is sent, a slow answer is not a reason to send it twice.
        Redirects are not followed (they could lead anywhere)."""

        def post() -> int:
            timestamp = int(time.time())  # signed when sent: each attempt is timestamped anew
            return send(target, "POST", body, {
                "Content-Type": "application/json", DELIVERY_HEADER: job_id, TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature_of(body, self.secret, timestamp),
                **({REQUEST_ID_HEADER: request_id} if request_id else {})}, WEBHOOK_TIMEOUT_S)

        delivered, _ = send_with_retries(post, f"webhook for job {job_id}", attempts)
        if delivered:
            logger.info("job %s: webhook delivered to %s", job_id, target.host)
        return delivered
