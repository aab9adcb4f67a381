"""The local server's error answers: our `{"ok": false, "error": ...}` envelope, or OpenAI's
`{"error": {...}}` on its routes, each with the HTTP status of its error type (`errors.STATUS`,
`errors.OPENAI_STATUS`)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from video_endpoint.errors import (
    OPENAI_STATUS,
    STATUS,
    HandlerError,
    NotFound,
    envelope,
    envelope_of,
    openai_error,
)


class Refusal(Exception):
    """A request answered before (or instead of) the handler: its HTTP status and its error, which
    each route renders in its own shape (`refusal_answer`)."""

    def __init__(self, status: int, message: str, field: str | None = None, kind: str = "invalid_request",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.headers = status, envelope(kind, message, field)["error"], headers or {}


def status_of_error(error: dict[str, Any], openai: bool = False) -> int:
    return (OPENAI_STATUS if openai else STATUS).get(error["type"], 500)


def error_dict_answer(error: dict[str, Any], request_id: str, status: int | None = None, openai: bool = False,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    """An envelope's `error` as the answer: our envelope, or OpenAI's shape on its routes; its HTTP
    status from its type unless given (404 for an unknown id); Retry-After when retrying helps."""
    status = status or status_of_error(error, openai)
    headers = {"X-Request-Id": request_id, **(headers or {})}
    if error["type"] in ("busy", "unavailable"):
        headers["Retry-After"] = str(error.get("retry_after_s", 5))
    body = openai_error(error, status) if openai else envelope_of(error)
    return JSONResponse(body, status_code=status, headers=headers)


def error_answer(status: int, message: str, request_id: str, field: str | None = None, kind: str = "invalid_request",
                 headers: dict[str, str] | None = None, openai: bool = False) -> JSONResponse:
    return error_dict_answer(envelope(kind, message, field)["error"], request_id, status, openai, headers)


def refused(exc: HandlerError, request_id: str, openai: bool = False) -> JSONResponse:
    """The handler's own error for `exc`, with its HTTP status (404 for an unknown id)."""
    return error_dict_answer(exc.envelope()["error"], request_id, 404 if isinstance(exc, NotFound) else None, openai)


def refusal_answer(refusal: Refusal, request_id: str, openai: bool = False) -> JSONResponse:
    return error_dict_answer(refusal.error, request_id, refusal.status, openai, refusal.headers)
