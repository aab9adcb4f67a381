"""A local HTTP server that speaks the Inference Endpoint protocol: `POST /` with
`{"inputs": {...}}` answers what `EndpointHandler` answers, `GET /health` says what is loaded.
Jobs (`video_endpoint.jobs`) also have routes of their own: `POST /jobs`, `GET /jobs/{id}`,
`DELETE /jobs/{id}` and `GET /jobs/{id}/events` (Server-Sent Events: one per step, then the result).

Started by `video-endpoint serve`. Not used on a hosted Endpoint (the platform serves `handler.py`
with its own app), so starlette and uvicorn are an optional extra, not in requirements.txt.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from encoders.registry import FORMATS
from video_endpoint import settings
from video_endpoint.endpoint import EndpointHandler
from video_endpoint.errors import Cancelled, InvalidRequest
from video_endpoint.jobs import JOB_KEYS
from video_endpoint.request_schema import RequestFields, parse_payload

logger = logging.getLogger(__name__)

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# HTTP status per error type: the client's fault is 4xx, ours is 5xx.
_STATUS = {"invalid_request": 400, "unsupported": 400, "out_of_memory": 500, "internal": 500, "busy": 503,
           "cancelled": 200}


@dataclass(frozen=True)
class ServerSettings:
    token: str | None = None
    """Bearer token every request must carry (--token or $VIDEO_API_TOKEN); None = no auth."""
    max_body_bytes: int = int(settings.BY_NAME["VIDEO_MAX_BODY_BYTES"].default)
    """$VIDEO_MAX_BODY_BYTES: larger bodies get 413 before they are read."""
    queue_depth: int = int(settings.BY_NAME["VIDEO_QUEUE_DEPTH"].default)
    """$VIDEO_QUEUE_DEPTH: requests that may wait behind the running one; more get 503."""
    body_timeout_s: float = float(settings.BY_NAME["VIDEO_BODY_TIMEOUT_S"].default)
    """$VIDEO_BODY_TIMEOUT_S: a body not received by then gets 408."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """The environment's values; `overrides` (the command line's flags) win where not None."""
        values: dict[str, Any] = {"token": settings.read("VIDEO_API_TOKEN", environ),
                                  "max_body_bytes": settings.read_int("VIDEO_MAX_BODY_BYTES", environ),
                                  "queue_depth": settings.read_int("VIDEO_QUEUE_DEPTH", environ),
                                  "body_timeout_s": settings.read_float("VIDEO_BODY_TIMEOUT_S", environ)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["token"] = values["token"] or None  # an empty token is no token, not "" to match
        return cls(**values)


def _error(status: int, message: str, request_id: str, field: str | None = None,
           kind: str = "invalid_request", headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"ok": False, "error": {"type": kind, "field": field, "message": message}}
    return JSONResponse(body, status_code=status, headers={"X-Request-Id": request_id, **(headers or {})})


def _unauthorized(request_id: str) -> JSONResponse:
    return _error(401, "missing or wrong bearer token", request_id, field="authorization",
                  headers={"WWW-Authenticate": "Bearer"})


class _Service:
    """The state behind the routes: the handler, the queue count, the settings."""

    def __init__(self, load_handler: Callable[[], EndpointHandler], settings: ServerSettings) -> None:
        self.load_handler = load_handler
        self.settings = settings
        self.handler: EndpointHandler | None = None
        self.in_flight = 0
        self.model_slot = anyio.CapacityLimiter(1)  # one generation at a time on the model
        self.recent_seconds = 5.0  # duration of the last request, for Retry-After

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Load before listening, as the Endpoint does: /health cannot answer before the model is there.
        self.handler = await anyio.to_thread.run_sync(self.load_handler)
        info = self.handler.model.describe()
        logger.info("model ready: %s (%s) on %s", self.handler.model.source, info["family"],
                    self.handler.model.device)
        yield

    @property
    def loaded(self) -> EndpointHandler:
        """The handler; the lifespan loads it before the server takes any request."""
        if self.handler is None:
            raise RuntimeError("the model is not loaded yet")
        return self.handler

    def authorized(self, request: Request) -> bool:
        if self.settings.token is None:
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.settings.token.encode())

    async def health(self, request: Request) -> Response:
        model = self.loaded.model
        return JSONResponse({"status": "ok", "model": model.describe(), "device": str(model.device),
                             "dtype": str(model.dtype).removeprefix("torch."),
                             "queue": {"in_flight": self.in_flight, "depth": self.settings.queue_depth},
                             "jobs": {"waiting": len(self.loaded.jobs.waiting), "kept": len(self.loaded.jobs.jobs)}})

    async def read_json(self, request: Request, request_id: str) -> Any | Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_body_bytes:
            return _error(413, f"body over {self.settings.max_body_bytes} bytes (VIDEO_MAX_BODY_BYTES)",
                          request_id)
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(400, f"content type must be application/json, not {content_type}", request_id)
        body = bytearray()
        with anyio.move_on_after(self.settings.body_timeout_s) as reading:  # a trickling body holds a slot
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.settings.max_body_bytes:
                    return _error(413, f"body over {self.settings.max_body_bytes} bytes (VIDEO_MAX_BODY_BYTES)",
                                  request_id)
        if reading.cancelled_caught:
            return _error(408, f"body not received within {self.settings.body_timeout_s:g} s "
                          "(VIDEO_BODY_TIMEOUT_S)", request_id)
        # Parsing holds the interpreter whichever thread runs it (0.4 s for a 20 MB list of numbers, with
        # /health waiting): a body with more values than any request can have is refused unparsed. Values
        # are separated by commas and colons; a valid request has a few dozen, plus those in its prompts.
        separators = body.count(b",") + body.count(b":")
        if separators > 2 * self.loaded.limits.max_prompt_chars + 1000:
            return _error(400, "body holds more JSON values than a request can have", request_id)
        try:  # off the event loop: a long body still takes a moment to parse
            return await anyio.to_thread.run_sync(_parse_json, bytes(body))
        except UnicodeDecodeError:
            return _error(400, "body is not UTF-8 text", request_id)
        except json.JSONDecodeError as exc:
            return _error(400, f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                          request_id)
        except RecursionError:
            return _error(400, "body is nested too deeply", request_id)
        except ValueError:  # Python's limit of 4,300 digits for an integer
            return _error(400, "body holds a number too long to read", request_id)

    async def predict(self, request: Request) -> Response:
        request_id = request.state.request_id
        data = await self.read_json(request, request_id)
        if isinstance(data, Response):
            return data
        inputs = data.get("inputs") if isinstance(data, dict) else None
        if isinstance(inputs, dict) and any(key in inputs for key in JOB_KEYS):
            return await self.job_answer(data, request_id)  # quick: never waits for the model
        try:  # cheap checks here (off the event loop), so a bad request never waits in the queue
            parsed = await anyio.to_thread.run_sync(parse_payload, data, self.loaded.limits)
        except InvalidRequest as exc:
            return JSONResponse(exc.envelope(), status_code=400, headers={"X-Request-Id": request_id})
        if not parsed.return_base64 and len(parsed.outputs) != 1:
            return _error(400, "return_base64 false sends one raw file: ask for exactly one output",
                          request_id, field="return_base64")
        if self.in_flight > self.settings.queue_depth:
            retry = max(1, math.ceil(self.recent_seconds * self.in_flight))
            return _error(503, f"busy: {self.in_flight} requests ahead; retry in {retry} s", request_id,
                          kind="internal", headers={"Retry-After": str(retry)})
        self.in_flight += 1
        try:
            return await self._generate(request, data, parsed, request_id)
        finally:
            self.in_flight -= 1

    async def _generate(self, request: Request, data: Any, parsed: RequestFields, request_id: str) -> Response:
        started = time.perf_counter()
        client_gone = threading.Event()

        def on_step(done: int, total: int) -> None:
            logger.info("request %s: step %d/%d (%.1f s)", request_id, done, total, time.perf_counter() - started)
            if client_gone.is_set():
                raise Cancelled("the client disconnected: generation stopped", field=None)

        async with anyio.create_task_group() as watchers:
            with anyio.CancelScope() as generation:
                async def watch_for_disconnect() -> None:
                    while (await request.receive())["type"] != "http.disconnect":
                        pass
                    client_gone.set()  # running: stops at its next step; waiting: never starts
                    generation.cancel()

                watchers.start_soon(watch_for_disconnect)
                result = await anyio.to_thread.run_sync(partial(self.loaded, data, on_step=on_step),
                                                        limiter=self.model_slot)
            watchers.cancel_scope.cancel()
        elapsed = time.perf_counter() - started
        if client_gone.is_set():
            logger.info("request %s: client disconnected after %.2f s; dropped", request_id, elapsed)
            return _error(499, "client disconnected", request_id)
        self.recent_seconds = elapsed
        headers = {"X-Request-Id": request_id}
        if not result["ok"]:
            error = result["error"]
            logger.info("request %s: %s (%s) after %.2f s", request_id, error["type"], error["field"], elapsed)
            return JSONResponse(result, status_code=_STATUS.get(error["type"], 500), headers=headers)
        logger.info("request %s: ok, %s, %d frames in %.2f s", request_id, result["diagnostics"]["mode"],
                    result["diagnostics"]["num_frames"], elapsed)
        if parsed.return_base64:
            return JSONResponse(result, headers=headers)
        (name, content), = result["outputs"].items()
        headers["X-Diagnostics"] = json.dumps(result["diagnostics"], separators=(",", ":"))
        return Response(content, media_type=FORMATS[name].MIME, headers=headers)


    async def job_answer(self, data: Any, request_id: str, status: int = 200) -> Response:
        result = await anyio.to_thread.run_sync(self.loaded, data)
        if not result["ok"]:
            error = result["error"]
            code = 404 if error["field"] == "job_id" else _STATUS.get(error["type"], 500)
            return JSONResponse(result, status_code=code, headers={"X-Request-Id": request_id})
        return JSONResponse(result, status_code=status, headers={"X-Request-Id": request_id})

    async def submit_job(self, request: Request) -> Response:
        request_id = request.state.request_id
        data = await self.read_json(request, request_id)
        if isinstance(data, Response):
            return data
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict | str):
            return _error(400, "the body must be {\"inputs\": {...a request...}}", request_id, field="inputs")
        inputs = data["inputs"] if isinstance(data["inputs"], dict) else {"prompt": data["inputs"]}
        return await self.job_answer({**data, "inputs": {**inputs, "async": True}}, request_id, status=202)

    async def job_status(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        cancel = request.method == "DELETE"
        return await self.job_answer({"inputs": {"job_id": job_id, "cancel": cancel}}, request.state.request_id)

    async def job_events(self, request: Request) -> Response:
        """Server-Sent Events: `progress` after each change (status, step), then `result` with the
        job's final answer, then the stream ends."""
        jobs, job_id = self.loaded.jobs, request.path_params["job_id"]
        try:
            jobs.status(job_id)
        except InvalidRequest as exc:
            return JSONResponse(exc.envelope(), status_code=404)

        async def stream() -> AsyncIterator[str]:
            seen = 0
            while True:
                try:
                    changes, final = await anyio.to_thread.run_sync(jobs.events, job_id, seen, 5.0)
                except InvalidRequest:  # expired meanwhile
                    return
                for change in changes:
                    yield f"event: progress\ndata: {json.dumps(change)}\n\n"
                seen += len(changes)
                if final is not None:
                    yield f"event: result\ndata: {json.dumps(final)}\n\n"
                    return
                if not changes:
                    yield ": waiting\n\n"  # a comment: keeps proxies from closing an idle stream

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _parse_json(body: bytes) -> Any:
    # strict=False: raw line breaks inside strings are accepted (GNU base64 wraps at 76)
    return json.loads(body.decode("utf-8"), strict=False)


class _EveryAnswer:
    """ASGI middleware around every route, unknown paths included: gives each request its
    X-Request-Id (the client's, if sane), checks the token before routing (so without it every
    path answers 401), and turns an unexpected exception into a JSON 500 without the traceback."""

    def __init__(self, app: ASGIApp, service: _Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        supplied = request.headers.get("x-request-id", "")
        request_id = supplied if _CLIENT_REQUEST_ID.match(supplied) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        if not self.service.authorized(request):
            await _unauthorized(request_id)(scope, receive, send)
            return
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("request %s failed with an unexpected error", request_id)
            if not started:
                await _error(500, "internal error; see the server log", request_id, kind="internal")(
                    scope, receive, send)


def create_app(load_handler: Callable[[], EndpointHandler], settings: ServerSettings) -> Starlette:
    service = _Service(load_handler, settings)
    app = Starlette(
        routes=[Route("/", service.predict, methods=["POST"]),
                Route("/health", service.health, methods=["GET"]),
                Route("/jobs", service.submit_job, methods=["POST"]),
                Route("/jobs/{job_id}", service.job_status, methods=["GET", "DELETE"]),
                Route("/jobs/{job_id}/events", service.job_events, methods=["GET"])],
        lifespan=service.lifespan,
    )
    app.add_middleware(_EveryAnswer, service=service)
    return app


def serve(load_handler: Callable[[], EndpointHandler], settings: ServerSettings, host: str | None,
          port: int) -> None:
    import uvicorn

    loopback = ("127.0.0.1", "localhost", "::1")
    if host is None:
        host = "0.0.0.0" if settings.token else "127.0.0.1"
    if settings.token is None:
        if host in loopback:
            logger.warning("no token configured (--token or $VIDEO_API_TOKEN): listening on %s only", host)
        else:
            logger.warning("no token configured and listening on %s: anyone who can reach it can use it", host)
    uvicorn.run(create_app(load_handler, settings), host=host, port=port, log_level="info")
