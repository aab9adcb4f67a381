"""Outputs uploaded instead of answered (`"upload": {"mp4": "<presigned PUT URL>"}`): the answer
carries where each went, its size and sha256, so a long video costs the answer nothing.

S3, GCS, R2 and Azure presigned URLs all take a plain PUT of the bytes. Only hosts the operator
lists (VIDEO_UPLOAD_HOSTS) are called, with the URL read once (`http_url`): no redirects, no other
host. Each PUT is bounded in time as a whole (connecting, sending, the store's answer: a store
that trickles its answer is cut too) and tried again on 5xx or network errors (a PUT may be
repeated); all the uploads of one answer end within UPLOAD_DEADLINE_S.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from encoders.registry import FORMATS
from video_endpoint.errors import InvalidRequest, UploadFailed
from video_endpoint.http_url import BadUrl, HttpTarget, TimedOut, parse_allowed_url, send, send_with_retries
from video_endpoint.request_schema import RequestFields

UPLOAD_TIMEOUT_S = 60.0  # per attempt, as a whole: connecting, sending and the store's answer
UPLOAD_ATTEMPTS = 3
UPLOAD_DEADLINE_S = 150.0  # every attempt of every output of one answer


def targets(request: RequestFields, hosts: tuple[str, ...]) -> dict[str, HttpTarget]:
    """Where each output goes, checked before anything is generated."""
    if not request.upload:
        return {}
    if not hosts:
        raise InvalidRequest("uploads are off on this server (VIDEO_UPLOAD_HOSTS)", field="upload")
    found = {}
    for name, url in request.upload.items():
        field = f"upload.{name}"
        if name not in request.outputs:
            raise InvalidRequest(f"{name} is not in outputs: add it, or drop its upload", field=field)
        try:
            found[name] = parse_allowed_url(url, hosts, "VIDEO_UPLOAD_HOSTS")
        except BadUrl as exc:
            raise InvalidRequest(f"upload URL {exc}", field=field) from None
    return found


def upload_all(files: Mapping[str, bytes], where: Mapping[str, HttpTarget], timeout_s: float = UPLOAD_TIMEOUT_S,
               deadline_s: float = UPLOAD_DEADLINE_S) -> dict[str, Any]:
    """PUT each file; `{"<format>_upload": {"url", "bytes", "sha256"}}`. Raises UploadFailed
    naming the first that failed (the answer then reports none of them)."""
    stored = {}
    ends = time.monotonic() + deadline_s
    for name, target in where.items():
        data = files[name]

        def put(target: HttpTarget = target, data: bytes = data, mime: str = FORMATS[name].MIME) -> int:
            left = ends - time.monotonic()
            if left <= 0:
                raise TimedOut()
            return send(target, "PUT", data, {"Content-Type": mime}, min(timeout_s, left))

        delivered, reason = send_with_retries(put, f"upload of {name} to {target.host}", UPLOAD_ATTEMPTS,
                                              again_after_sent=True)
        if time.monotonic() >= ends and not delivered:
            reason = f"the uploads took over {deadline_s:g} s"
        if not delivered:
            raise UploadFailed(f"could not upload {name} ({reason})", field=f"upload.{name}")
        stored[f"{name}_upload"] = {"url": target.without_query(), "bytes": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}
    return stored
