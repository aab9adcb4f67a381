"""Outputs uploaded instead of answered (`"upload": {"mp4": "<presigned PUT URL>"}`): the answer
carries where each went, its size and sha256, so a long video costs the answer nothing.

S3, GCS, R2 and Azure presigned URLs all take a plain PUT of the bytes. Only hosts the operator
lists (VIDEO_UPLOAD_HOSTS) are called, with the URL read once (`http_url`): no redirects, no other
host. Each PUT is bounded in time and tried again on 5xx or network errors (a PUT may be repeated).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

from encoders.registry import FORMATS
from video_endpoint.errors import HandlerError, InvalidRequest
from video_endpoint.http_url import BadUrl, HttpTarget, parse_allowed_url, send, send_with_retries
from video_endpoint.request_schema import RequestFields

UPLOAD_TIMEOUT_S = 60.0  # per attempt: connecting, sending and the store's answer
UPLOAD_ATTEMPTS = 3


class UploadFailed(HandlerError):
    """An output could not be stored where the request said; `field` is `upload.<format>`."""

    type = "upload_failed"


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


def upload_all(files: Mapping[str, bytes], where: Mapping[str, HttpTarget]) -> dict[str, Any]:
    """PUT each file; `{"<format>_upload": {"url", "bytes", "sha256"}}`. Raises UploadFailed
    naming the first that failed (the answer then reports none of them)."""
    stored = {}
    for name, target in where.items():
        data = files[name]
        put = functools.partial(send, target, "PUT", data, {"Content-Type": FORMATS[name].MIME}, UPLOAD_TIMEOUT_S)
        delivered, reason = send_with_retries(put, f"upload of {name} to {target.host}", UPLOAD_ATTEMPTS,
                                              again_after_sent=True)
        if not delivered:
            raise UploadFailed(f"could not upload {name} ({reason})", field=f"upload.{name}")
        stored[f"{name}_upload"] = {"url": target.without_query(), "bytes": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}
    return stored
