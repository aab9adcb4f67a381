"""A local HTTP server that speaks the Inference Endpoint protocol: `POST /` with
`{"inputs": {...}}` answers what `EndpointHandler` answers, `GET /health` says what is loaded.
Jobs (`video_endpoint.jobs`) also have routes of their own: `POST /jobs`, `GET /jobs/{id}`,
`DELETE /jobs/{id}` and `GET /jobs/{id}/events` (Server-Sent Events: one per step, then the result).

Started by `video-endpoint serve`. Not used on a hosted Endpoint (the platform serves `handler.py`
with its own app), so starlette and uvicorn are an optional extra, not in requirements.txt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import prometheus_client
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from encoders.registry import FORMATS
from video_endpoint import metrics, server_logs, settings
from video_endpoint.endpoint import EndpointHandler
from video_endpoint.errors import Cancelled, HandlerError, InvalidRequest
from video_endpoint.http_errors import Refusal, error_answer, refusal_answer, refused, status_of_error
from video_endpoint.openai_videos import OpenAIVideos
from video_endpoint.request_schema import JobCall, raw_file_body, read_job_call, read_job_submission
from video_endpoint.routes import METRICS_PATH, OPENAI_PREFIX, ROUTES, listing
from video_endpoint.routes import Route as RouteSpec
from video_endpoint.stages import Parsed, new_request_id

logger = logging.getLogger(__name__)

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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
    header_timeout_s: float = float(settings.BY_NAME["VIDEO_HEADER_TIMEOUT_S"].default)
    """$VIDEO_HEADER_TIMEOUT_S: a connection whose request headers are not in by then is closed."""
    max_event_streams: int = int(settings.BY_NAME["VIDEO_MAX_EVENT_STREAMS"].default)
    """$VIDEO_MAX_EVENT_STREAMS: event streams open at once; more get 503."""
    metrics_public: bool = False
    """$VIDEO_METRICS_PUBLIC: GET /metrics without the token."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """The environment's values; `overrides` (the command line's flags) win where not None."""
        values: dict[str, Any] = {"token": settings.read("VIDEO_API_TOKEN", environ),
                                  "max_body_bytes": settings.read_int("VIDEO_MAX_BODY_BYTES", environ),
                                  "queue_depth": settings.read_int("VIDEO_QUEUE_DEPTH", environ),
                                  "body_timeout_s": settings.read_float("VIDEO_BODY_TIMEOUT_S", environ),
                                  "header_timeout_s": settings.read_float("VIDEO_HEADER_TIMEOUT_S", environ),
                                  "max_event_streams": settings.read_int("VIDEO_MAX_EVENT_STREAMS", environ),
                                  "metrics_public": settings.read_flag("VIDEO_METRICS_PUBLIC", environ)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["token"] = values["token"] or None  # an empty token is no token, not "" to match
        return cls(**values)


class _Service:
    """The state behind the routes: the handler, the queue count, the settings."""

    def __init__(self, load_handler: Callable[[], EndpointHandler], settings: ServerSettings,
                 base_url: str | None = None) -> None:
        self.load_handler = load_handler
        self.base_url = base_url  # where clients reach it, said once the model is ready
        self.settings = settings
        self.handler: EndpointHandler | None = None
        self.event_streams = 0  # open GET /jobs/{id}/events
        self.openapi_document: dict[str, Any] | None = None  # built on the first GET /openapi.json
        self.videos = OpenAIVideos(self)  # /v1/...

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Load before listening, as the Endpoint does: /health cannot answer before the model is there.
        self.handler = await anyio.to_thread.run_sync(self.load_handler)
        info = self.handler.model.describe()
        logger.info("model ready: %s (%s) on %s; jobs kept in %s", self.handler.model.source, info["family"],
                    self.handler.model.device, self.handler.jobs.name)
        if self.base_url is not None:
            logger.info("serving at %s/ : the API's description %s/openapi.json, metrics %s%s, OpenAI's Videos "
                        "API %s/v1", self.base_url, self.base_url, self.base_url, METRICS_PATH, self.base_url)
        yield
        # SIGTERM: uvicorn has answered the open requests; the running job ends or goes back to the shared
        # store (in memory, the jobs end with the process whatever it does)
        if self.handler.jobs.shared:
            await anyio.to_thread.run_sync(self.handler.scheduler.stop, self.handler.job_settings.shutdown_grace_s)

    @property
    def max_body_bytes(self) -> int:
        return self.settings.max_body_bytes

    @property
    def loaded(self) -> EndpointHandler:
        """The handler; the lifespan loads it before the server takes any request."""
        if self.handler is None:
            raise RuntimeError("the model is not loaded yet")
        return self.handler

    def public(self, method: str, path: str) -> bool:
        """Answered without the token."""
        return (method, path) in PUBLIC_ROUTES or (path == METRICS_PATH and self.settings.metrics_public)

    def authorized(self, request: Request) -> bool:
        if self.settings.token is None:
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.settings.token.encode())

    async def openapi(self, request: Request) -> Response:
        if self.openapi_document is None:
            from video_endpoint.openapi import document

            self.openapi_document = document()
        return JSONResponse(self.openapi_document)

    async def metrics(self, request: Request) -> Response:
        """Prometheus' text format; off the event loop (a shared job store is asked for its counts)."""
        body = await anyio.to_thread.run_sync(prometheus_client.generate_latest)
        return Response(body, media_type=prometheus_client.CONTENT_TYPE_LATEST)

    async def alive(self, request: Request) -> Response:
        """Liveness for a platform's probe, without a token: says nothing about the model (the
        server takes requests only once it is loaded)."""
        return JSONResponse({"status": "ok"})

    async def health(self, request: Request) -> Response:
        model, scheduler = self.loaded.model, self.loaded.scheduler
        jobs = await anyio.to_thread.run_sync(self.loaded.jobs.health)  # a remote store answers within its timeout
        queue = scheduler.describe()
        return JSONResponse({"status": "ok", "model": model.describe(), "device": str(model.device),
                             "dtype": str(model.dtype).removeprefix("torch."),
                             "queue": {"in_flight": queue["admitted"], "waiting": queue["waiting"],
                                       "running": queue["running"], "depth": self.settings.queue_depth},
                             "jobs": jobs})

    async def read_body(self, request: Request) -> bytes:
        """The body, within VIDEO_MAX_BODY_BYTES and VIDEO_BODY_TIMEOUT_S; raises Refusal."""
        too_large = Refusal(413, f"body over {self.settings.max_body_bytes} bytes (VIDEO_MAX_BODY_BYTES)")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_body_bytes:
            raise too_large
        body = bytearray()
        with anyio.move_on_after(self.settings.body_timeout_s) as reading:  # a trickling body holds a slot
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.settings.max_body_bytes:
                    raise too_large
        if reading.cancelled_caught:
            raise Refusal(408, f"body not received within {self.settings.body_timeout_s:g} s (VIDEO_BODY_TIMEOUT_S)")
        return bytes(body)

    async def read_json(self, request: Request) -> Any:
        """The JSON body; raises Refusal."""
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refusal(400, f"content type must be application/json, not {content_type}")
        body = await self.read_body(request)
        # Parsing holds the interpreter whichever thread runs it (0.4 s for a 20 MB list of numbers, with
        # /health waiting): a body with more values than any request can have is refused unparsed. Values
        # are separated by commas and colons; a valid request has a few dozen, plus those in its prompts.
        separators = body.count(b",") + body.count(b":")
        if separators > 2 * self.loaded.limits.max_prompt_chars + 1000:
            raise Refusal(400, "body holds more JSON values than a request can have")
        try:  # off the event loop: a long body still takes a moment to parse
            return await anyio.to_thread.run_sync(_parse_json, body)
        except UnicodeDecodeError:
            raise Refusal(400, "body is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise Refusal(400, f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except RecursionError:
            raise Refusal(400, "body is nested too deeply") from None
        except ValueError:  # Python's limit of 4,300 digits for an integer
            raise Refusal(400, "body holds a number too long to read") from None

    async def predict(self, request: Request) -> Response:
        request_id = request.state.request_id
        try:
            data = await self.read_json(request)
        except Refusal as refusal:
            metrics.refused("sync", refusal.error, request_id)
            return refusal_answer(refusal, request_id)
        try:  # the body's job keys, read as the handler reads them: one path per kind, whatever they say
            call = read_job_call(data, request.headers.get("idempotency-key"))
        except InvalidRequest as exc:
            metrics.refused("sync", exc, request_id)
            return refused(exc, request_id)
        call = dataclasses.replace(call, request_id=request_id)
        if call.kind != "generate":
            return await self.job_answer(call, request_id)  # quick: never waits for the model
        try:  # validated first (quick, off the event loop): a bad request is refused even when busy
            call = dataclasses.replace(call, data=raw_file_body(call.data, request.headers.get("accept", "")))
            parsed = await anyio.to_thread.run_sync(self._parse_for_now, call.data, request_id)
            # before anything is decoded: a request's images and videos count against the queue
            self.loaded.scheduler.admit(self.settings.queue_depth)
        except HandlerError as exc:
            metrics.refused("sync", exc, request_id)
            return refused(exc, request_id)
        try:
            return await self._generate(request, parsed, request_id)
        finally:
            self.loaded.scheduler.leave()

    def _parse_for_now(self, data: Any, request_id: str) -> Parsed:
        """The body validated, with the checks of a synchronous answer."""
        parsed = self.loaded.parse(data, request_id)
        if not parsed.request.return_base64 and parsed.uploads:
            raise InvalidRequest("this request would be answered with the file itself (return_base64 false, or "
                                 "Accept): with upload, the answer is JSON", field="upload")
        if not parsed.request.return_base64 and len(parsed.request.outputs) != 1:
            raise InvalidRequest("return_base64 false sends one raw file: ask for exactly one output",
                                 field="return_base64")
        return parsed

    async def _generate(self, request: Request, parsed: Parsed, request_id: str) -> Response:
        started = time.perf_counter()
        client_gone = threading.Event()

        def on_step(done: int, total: int) -> None:  # a hang-up sets `client_gone`: the scheduler stops it
            logger.info("request %s: step %d/%d (%.1f s)", request_id, done, total, time.perf_counter() - started,
                        extra=server_logs.ids(request_id))

        refusal: HandlerError | None = None
        async with anyio.create_task_group() as watchers:
            with anyio.CancelScope() as generation:
                async def watch_for_disconnect() -> None:
                    while (await request.receive())["type"] != "http.disconnect":
                        pass
                    client_gone.set()  # decoding or running: stops now; waiting: never starts
                    generation.cancel()

                watchers.start_soon(watch_for_disconnect)
                try:  # decoded once, here (off the event loop): a bad image or video never waits for the model
                    decoded = await anyio.to_thread.run_sync(self.loaded.decode_media, parsed, client_gone)
                except HandlerError as exc:
                    refusal = exc
                else:  # in its turn on the model (the scheduler): generated, then encoded
                    answer = self.loaded.scheduler.submit(decoded, on_step, client_gone)
                    produced = await asyncio.shield(asyncio.wrap_future(answer))
            watchers.cancel_scope.cancel()
        if client_gone.is_set():
            dropped = metrics.answered("sync", Cancelled("the client disconnected", field=None).envelope())
            logger.info("request %s: client disconnected after %.2f s; dropped", request_id,
                        time.perf_counter() - started,
                        extra={**server_logs.ids(request_id), **server_logs.finished("sync", dropped)})
            return error_answer(499, "client disconnected", request_id)
        if refusal is not None:
            metrics.refused("sync", refusal, request_id)
            return refused(refusal, request_id)
        # uploads after the model is free: a slow store holds this request only
        result = metrics.answered("sync", await anyio.to_thread.run_sync(self.loaded.deliver, produced), produced)
        elapsed = time.perf_counter() - started
        headers = {"X-Request-Id": request_id}
        logged = {**server_logs.ids(request_id),
                  **server_logs.finished("sync", result, produced.mode, decoded.request.prompt)}
        if not result["ok"]:
            error = result["error"]
            logger.info("request %s: %s (%s) after %.2f s", request_id, error["type"], error["field"], elapsed,
                        extra=logged)
            return JSONResponse(result, status_code=status_of_error(error), headers=headers)
        logger.info("request %s: ok, %s, %d frames in %.2f s", request_id, result["diagnostics"]["mode"],
                    result["diagnostics"]["num_frames"], elapsed, extra=logged)
        if decoded.request.return_base64:
            return JSONResponse(result, headers=headers)
        (name, content), = result["outputs"].items()
        headers["X-Diagnostics"] = json.dumps(result["diagnostics"], separators=(",", ":"))
        return Response(content, media_type=FORMATS[name].MIME, headers=headers)


    async def job_answer(self, call: JobCall, request_id: str, status: int = 200) -> Response:
        headers = {"X-Request-Id": request_id}
        if call.kind == "submit":  # decodes and checks the request first: off the event loop
            result = await anyio.to_thread.run_sync(self.loaded.job_request, call)
            if not result["ok"]:
                return JSONResponse(result, status_code=status_of_error(result["error"]), headers=headers)
            return JSONResponse(result, status_code=status, headers=headers)
        try:  # a lookup: a finished job's answer is the JSON the store keeps, sent without a copy
            body = await anyio.to_thread.run_sync(partial(self.loaded.jobs.status_json, call.job_id,
                                                          cancel=call.kind == "cancel"))
        except HandlerError as exc:  # unknown (404), or the store is not answering
            return refused(exc, request_id)
        return _shared_json(body, headers)

    async def submit_job(self, request: Request) -> Response:
        request_id = request.state.request_id
        try:
            data = await self.read_json(request)
        except Refusal as refusal:
            metrics.refused("job", refusal.error, request_id)
            return refusal_answer(refusal, request_id)
        try:
            call = read_job_submission(data, request.headers.get("idempotency-key"))
        except InvalidRequest as exc:
            metrics.refused("job", exc, request_id)
            return refused(exc, request_id)
        return await self.job_answer(dataclasses.replace(call, request_id=request_id), request_id, status=202)

    async def job_status(self, request: Request) -> Response:
        call = JobCall("cancel" if request.method == "DELETE" else "poll", job_id=request.path_params["job_id"])
        return await self.job_answer(call, request.state.request_id)

    async def job_events(self, request: Request) -> Response:
        """Server-Sent Events: `progress` after each change (status, step), then `result` with the
        job's final answer, then the stream ends. A stream holds no thread: the queue wakes it."""
        jobs, job_id, request_id = self.loaded.jobs, request.path_params["job_id"], request.state.request_id
        if self.event_streams >= self.settings.max_event_streams:
            return error_answer(503, f"busy: {self.event_streams} event streams are open (VIDEO_MAX_EVENT_STREAMS); "
                                "poll GET /jobs/{id} instead, or retry later", request_id, kind="busy",
                                headers={"Retry-After": "5"})
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:  # called on the job worker's thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
                loop.call_soon_threadsafe(woken.set)

        try:
            await anyio.to_thread.run_sync(jobs.watch, job_id, wake)
        except HandlerError as exc:
            return refused(exc, request_id)
        self.event_streams += 1
        # a store shared with other replicas is looked at every `poll_interval_s`; this one's wakes the stream
        wait_s = min(EVENT_KEEPALIVE_S, jobs.poll_interval_s or EVENT_KEEPALIVE_S)

        async def stream() -> AsyncIterator[bytes | memoryview]:
            seen, idle_s = 0, 0.0
            try:
                while True:
                    woken.clear()  # before reading: a change after the read wakes the wait below
                    try:
                        changes, ended = await _off_loop_if(jobs.shared, jobs.events, job_id, seen)
                    except HandlerError:  # expired meanwhile, or the store went away: the client polls
                        return
                    for change in changes:
                        yield f"event: progress\ndata: {json.dumps(change)}\n\n".encode()
                    seen += len(changes)
                    if ended:
                        try:
                            final = await _off_loop_if(jobs.shared, jobs.status_json, job_id)
                        except HandlerError:  # expired meanwhile, or the store went away
                            return
                        yield b"event: result\ndata: "
                        for chunk in _chunks(final):
                            yield chunk
                        yield b"\n\n"
                        return
                    if not changes:
                        with anyio.move_on_after(wait_s) as idle:
                            await woken.wait()
                        idle_s = 0.0 if not idle.cancelled_caught else idle_s + wait_s
                        if idle_s >= EVENT_KEEPALIVE_S:
                            idle_s = 0.0
                            yield b": waiting\n\n"  # a comment: keeps proxies from closing an idle stream
            finally:
                jobs.unwatch(job_id, wake)
                self.event_streams -= 1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


ANSWER_CHUNK_BYTES = 64 * 1024  # a large answer goes out this much at a time, as the client reads it
EVENT_KEEPALIVE_S = 5.0  # an idle event stream sends a comment this often


async def _off_loop_if(remote: bool, call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)`, on a thread where it waits for a remote store; in memory it is quick."""
    return await anyio.to_thread.run_sync(call, *args) if remote else call(*args)


def _chunks(body: bytes) -> Iterator[memoryview]:
    view = memoryview(body)
    for start in range(0, len(view), ANSWER_CHUNK_BYTES):
        yield view[start:start + ANSWER_CHUNK_BYTES]


def _shared_json(body: bytes, headers: dict[str, str]) -> Response:
    """`body` sent as it is read: a client that does not read holds a chunk of it, not a copy."""
    if len(body) <= ANSWER_CHUNK_BYTES:
        return Response(body, media_type="application/json", headers=headers)
    return StreamingResponse(_chunks(body), media_type="application/json",
                             headers={**headers, "Content-Length": str(len(body))})


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
        request_id = supplied if _CLIENT_REQUEST_ID.match(supplied) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        openai = scope["path"].startswith(OPENAI_PREFIX)
        if not self.service.authorized(request) and not self.service.public(request.method, scope["path"]):
            await error_answer(401, "missing or wrong bearer token", request_id, field="authorization",
                               headers={"WWW-Authenticate": "Bearer"}, openai=openai)(scope, receive, send)
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
            logger.exception("request %s failed with an unexpected error", request_id,
                             extra=server_logs.ids(request_id))
            if not started:
                await error_answer(500, "internal error; see the server log", request_id, kind="internal",
                                   openai=openai)(scope, receive, send)


PUBLIC_ROUTES = {(method, route.path) for route in ROUTES if route.public for method in route.methods}


async def _no_route(request: Request, exc: Exception) -> Response:
    """404 / 405 in the shape every other answer of that path uses."""
    assert isinstance(exc, HTTPException)
    openai = request.url.path.startswith(OPENAI_PREFIX)
    message = {404: f"no route {request.url.path[:200]}: the routes are {listing()}",
               405: f"{request.method} is not allowed here; allowed: {dict(exc.headers or {}).get('Allow', '')}"}
    return error_answer(exc.status_code, message.get(exc.status_code, exc.detail), request.state.request_id,
                        headers=dict(exc.headers or {}), openai=openai)


def _endpoint(service: _Service, route: RouteSpec) -> Callable[[Request], Any]:
    """One callable for a path: each method to the service's method its operation names."""
    answers: dict[str, Callable[[Request], Awaitable[Response]]] = {}
    for operation in route.operations:
        target: Any = service
        for name in operation.endpoint.split("."):
            target = getattr(target, name)
        answers[operation.method] = target

    async def answer(request: Request) -> Response:  # starlette adds HEAD to GET: answered as GET
        return await answers[request.method if request.method in answers else "GET"](request)

    return answer


def create_app(load_handler: Callable[[], EndpointHandler], settings: ServerSettings,
               base_url: str | None = None) -> Starlette:
    """The local server's app; `base_url` (where clients reach it) is said in the log once it is ready."""
    service = _Service(load_handler, settings, base_url)
    app = Starlette(
        exception_handlers={HTTPException: _no_route},
        routes=[Route(route.path, _endpoint(service, route), methods=route.methods) for route in ROUTES],
        lifespan=service.lifespan,
    )
    app.add_middleware(_EveryAnswer, service=service)
    return app


def header_deadline(protocol: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, closing a connection whose request headers are not complete
    `seconds` after it opened (or after its last answer): uvicorn itself waits for them forever."""
    base: Any = protocol

    class HeaderDeadline(base):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm_header_deadline(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(seconds, self._header_deadline_passed)

        def _header_deadline_passed(self) -> None:
            waiting_for_headers = self.cycle is None or self.cycle.response_complete
            if waiting_for_headers and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


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
    from uvicorn.config import LOGGING_CONFIG
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # every interface: name one that works
    base_url = f"http://{f'[{shown_host}]' if ':' in shown_host else shown_host}:{port}"
    uvicorn.run(create_app(load_handler, settings, base_url), host=host, port=port, log_level="info",
                http=header_deadline(AutoHTTPProtocol, settings.header_timeout_s),
                log_config=server_logs.uvicorn_log_config() or LOGGING_CONFIG)
