"""The errors a request can end in, and the `{"ok": false, "error": {...}}` envelope they become.

The error types are a closed set: clients branch on `type`, so a new failure gets one of these,
not a new name. Messages never carry tracebacks, file paths or the request's own (possibly
multi-megabyte) values.
"""

from __future__ import annotations

from typing import Any

from pipelines import errors as model_errors
from pipelines.errors import ModelLoadError

__all__ = ["ModelLoadError"]  # raised from `EndpointHandler.__init__`; defined with the families


class HandlerError(Exception):
    """A failure that is reported to the client as `ok: false` (never raised out of the handler)."""

    type = "internal"

    def __init__(self, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def envelope(self) -> dict[str, Any]:
        return envelope(self.type, self.message, self.field, **self.extra)


class InvalidRequest(HandlerError):
    """The request breaks the API contract; `field` names the offending input (dotted path)."""

    type = "invalid_request"


class Unsupported(HandlerError):
    """A valid request that the loaded model cannot serve (e.g. a mode the checkpoint lacks)."""

    type = "unsupported"


class OutOfMemory(HandlerError):
    """The accelerator ran out of memory; the hint says how to make the request smaller."""

    type = "out_of_memory"


class EncodeFailed(HandlerError):
    """An output format could not be encoded; `field` names the output."""

    type = "internal"


class Cancelled(HandlerError):
    """Generation stopped at its next step: the job was cancelled, or the client went away (the
    local server noticed)."""

    type = "cancelled"


class Busy(HandlerError):
    """Too much is waiting already (VIDEO_MAX_QUEUED jobs, or every input-video reader); retry later."""

    type = "busy"


class UploadFailed(HandlerError):
    """An output could not be stored where the request said; `field` is `upload.<format>`."""

    type = "upload_failed"


class Unavailable(HandlerError):
    """A service the request needs is not answering (the shared job store): jobs wait for it to
    come back, synchronous requests are still served; retry later."""

    type = "unavailable"


def from_model(exc: model_errors.Refused | model_errors.OutOfMemory) -> HandlerError:
    """The answer for what a family or the model runtime raised."""
    if isinstance(exc, model_errors.OutOfMemory):
        return OutOfMemory(exc.message)
    if isinstance(exc, model_errors.CannotServe):
        return Unsupported(exc.message, field=exc.field)
    return InvalidRequest(exc.message, field=exc.field)


class NotFound(InvalidRequest):
    """An id that names nothing kept (a job, a video, a model): 404 on the local server."""


def envelope(kind: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The one `{"ok": false, "error": {...}}` every failure is answered with."""
    return envelope_of({"type": kind, "field": field, "message": message, **extra})


def envelope_of(error: dict[str, Any]) -> dict[str, Any]:
    """An envelope's `error`, back in its envelope (every envelope is written here)."""
    return {"ok": False, "error": error}


# HTTP status per error type on the local server: the client's fault is 4xx, ours is 5xx
STATUS = {"invalid_request": 400, "unsupported": 400, "out_of_memory": 500, "internal": 500, "busy": 503,
          "unavailable": 503, "upload_failed": 502, "cancelled": 200}
# OpenAI's API answers "slow down" with 429, which its SDKs retry by themselves after Retry-After
OPENAI_STATUS = {**STATUS, "busy": 429, "cancelled": 409}
# OpenAI's error `type` per status; our error type goes in its `code`
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                405: "invalid_request_error", 408: "invalid_request_error", 409: "invalid_request_error",
                413: "invalid_request_error", 415: "invalid_request_error", 416: "invalid_request_error",
                429: "rate_limit_error"}


def openai_error(error: dict[str, Any], status: int) -> dict[str, Any]:
    """An envelope's `error` in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`:
    the same message, `param` the field, `code` our error type."""
    return {"error": {"message": error["message"], "type": OPENAI_TYPES.get(status, "server_error"),
                      "param": error.get("field"), "code": error["type"]}}
