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
        error: dict[str, Any] = {"type": self.type, "field": self.field, "message": self.message}
        error.update(self.extra)
        return {"ok": False, "error": error}


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
