"""OpenAI's Videos API on the local server (`/v1/videos...`, `/v1/models`), for the `openai` SDKs
and the tools built on them.

A video is a job (`video_endpoint.jobs`) submitted with what its Video object shows kept beside
it in the job store (`meta`: model, prompt, creation time and the planned parameters, seed
included), so any replica sharing the store answers for it. Its progress comes from the real
denoising steps; DELETE stops the job at its next step. Every job is asked for the MP4, its
thumbnail and its sprite sheet (the `variant`s of `/content`), and whatever else `outputs` names.

Beyond OpenAI's fields (`prompt`, `size`, `seconds`, `model`, `input_reference`), every field of
this endpoint's own request may come as an extra field (the SDK's `extra_body`): JSON values in a
JSON body; text in a form body, typed by the request schema (`request_schema.typed_form_fields`).
Errors come in OpenAI's shape, with the status codes its SDKs map to their exceptions.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from encoders.registry import FORMATS
from video_endpoint import metrics
from video_endpoint.endpoint import EndpointHandler
from video_endpoint.errors import HandlerError, InvalidRequest, NotFound
from video_endpoint.http_errors import Refusal, refusal_answer, refused
from video_endpoint.jobs import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, SUCCEEDED
from video_endpoint.request_schema import JobCall, RequestFields, read_form, typed_form_fields
from video_endpoint.stages import Decoded

VIDEO_ID_PREFIX = "video_"
NOT_SERVED = ("OpenAI's characters routes are not served here; the video routes are POST /v1/videos, "
              "/v1/videos/edits, /v1/videos/extensions, /v1/videos/{id}/remix")
ALWAYS = ("mp4", "thumbnail", "spritesheet")  # every video job makes these: the `variant`s of /content
VARIANTS = {"video": "mp4", "thumbnail": "thumbnail", "spritesheet": "spritesheet"}
STATUSES = {QUEUED: "queued", RUNNING: "in_progress", SUCCEEDED: "completed", FAILED: "failed", CANCELLED: "failed"}
DEFAULT_PAGE, MAX_PAGE = 20, 100
MAX_FORM_PARTS = 200
OWN_FIELDS = ("prompt", "model", "size", "seconds", "input_reference", "video")  # OpenAI's, not our request's
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
# the job keys of our own protocol: a video is always a job, answered by these routes
_NOT_EXTRAS = ("async", "job_id", "cancel", "idempotency_key", "return_base64")

Route = Callable[["OpenAIVideos", Request], Awaitable[Response]]


class ServerState(Protocol):
    """What these routes use of the server's state (`server._Service`)."""

    @property
    def loaded(self) -> EndpointHandler: ...
    @property
    def max_body_bytes(self) -> int: ...
    async def read_body(self, request: Request) -> bytes: ...
    async def read_json(self, request: Request) -> Any: ...


def _in_openai_shape(route: Route, submits_job: bool = False) -> Route:
    """The route's refusals (a bad body, a HandlerError) as OpenAI's errors; where the route submits a
    job, each is also counted as a refused job (`metrics`)."""
    @functools.wraps(route)
    async def answer(self: OpenAIVideos, request: Request) -> Response:
        request_id = request.state.request_id
        try:
            return await route(self, request)
        except Refusal as refusal:
            if submits_job:
                metrics.refused("job", refusal.error, request_id)
            return refusal_answer(refusal, request_id, openai=True)
        except HandlerError as exc:
            if submits_job and not isinstance(exc, NotFound):  # a source video not there: a lookup, not a refusal
                metrics.refused("job", exc, request_id)
            return refused(exc, request_id, openai=True)
    return answer


_submits_job = functools.partial(_in_openai_shape, submits_job=True)


class OpenAIVideos:
    """The /v1 routes; `service` is the server's state (its handler, settings and body reading)."""

    def __init__(self, service: ServerState) -> None:
        self.service = service
        self.started = int(time.time())

    # -- models --------------------------------------------------------------------------------

    def _model(self) -> dict[str, Any]:
        handler = self.service.loaded
        return {"id": handler.model.name, "object": "model", "created": self.started, "owned_by": "video-endpoint"}

    @_in_openai_shape
    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model()]})

    @_in_openai_shape
    async def model(self, request: Request) -> Response:
        served = self._model()
        if request.path_params["model_id"] != served["id"]:
            raise NotFound(f"model not served here; this server serves '{served['id']}'", field="model")
        return JSONResponse(served)

    @_in_openai_shape
    async def not_served(self, request: Request) -> Response:
        raise NotFound(NOT_SERVED, field=None)

    # -- creating --------------------------------------------------------------------------------

    @_submits_job
    async def create(self, request: Request) -> Response:
        fields, files = await self._read(request)
        own = _take(fields, files, "prompt", "model", "size", "seconds", "input_reference")
        _no_other_files(files)
        self._check_model(own.get("model"))
        inputs, notes = self._shape(own, fields)
        reference = own.get("input_reference")
        if reference is not None:
            if "image" in inputs:
                raise InvalidRequest("give the image once: input_reference, or image", field="input_reference")
            inputs["image"] = _image_of(reference)
        return await self._submit(request, inputs, notes)

    @_submits_job
    async def remix(self, request: Request) -> Response:
        source = await self._video(request.path_params["video_id"], completed=True)
        fields, files = await self._read(request)
        own = _take(fields, files, "prompt")
        _no_other_files(files)
        submitted = await anyio.to_thread.run_sync(self.service.loaded.jobs.kept, source["job"]["id"])
        inputs = {**submitted, **_extras(fields), "prompt": _prompt(own)}
        inputs["outputs"] = _outputs(inputs.get("outputs"))
        return await self._submit(request, inputs, [], remixed_from=VIDEO_ID_PREFIX + source["job"]["id"])

    @_submits_job
    async def edit(self, request: Request) -> Response:
        fields, files = await self._read(request)
        own = _take(fields, files, "prompt", "video", "size", "seconds")
        _no_other_files(files)
        video, like = await self._source(own)
        inputs, notes = self._shape(own, {**_unless_given(like, own), **fields})
        inputs["video"] = video
        return await self._submit(request, inputs, notes)

    @_submits_job
    async def extend(self, request: Request) -> Response:
        fields, files = await self._read(request)
        own = _take(fields, files, "prompt", "video", "seconds", "size")
        _no_other_files(files)
        if own.get("seconds") is None:
            raise InvalidRequest("seconds is required: how long the extension is", field="seconds")
        video, like = await self._source(own)
        inputs, notes = self._shape(own, {**_unless_given(like, own), **fields})
        inputs.update(extend=video, return_extended=True)
        return await self._submit(request, inputs, notes)

    def _check_model(self, model: Any) -> None:
        served = self.service.loaded.model.name
        if model is not None and model != served:
            raise InvalidRequest(f"this server serves the model '{served}' (GET /v1/models); send that or no model",
                                 field="model")

    def _shape(self, own: dict[str, Any], fields: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Our request's fields from OpenAI's `prompt`, `size` and `seconds` and the extra fields."""
        inputs, notes = {**_extras(fields), "prompt": _prompt(own)}, []
        if own.get("size") is not None:
            if "width" in fields or "height" in fields:
                raise InvalidRequest("give the size once: size, or width and height", field="size")
            inputs["width"], inputs["height"] = _size(own["size"])
        if own.get("seconds") is not None:
            if "num_frames" in fields:
                raise InvalidRequest("give the length once: seconds, or num_frames", field="seconds")
            seconds = _seconds(own["seconds"])
            fps = inputs.get("fps")
            if not isinstance(fps, int) or isinstance(fps, bool):
                fps = self._default_fps()
            frames = max(1, round(seconds * fps))
            if not math.isclose(frames, seconds * fps, abs_tol=1e-6):
                notes.append(f"seconds {seconds:g} at {fps} fps is {seconds * fps:g} frames: made {frames} "
                             f"({frames / fps:.3g} s)")
            inputs.update(num_frames=frames, fps=fps)
        inputs["outputs"] = _outputs(inputs.get("outputs"))
        return inputs, notes

    def _default_fps(self) -> int:
        """The family's own rate (its checkpoint's), else the API card's default."""
        model = self.service.loaded.model
        fps = model.family.request_defaults(model.pipelines).get("fps")
        return int(fps) if fps is not None else int(RequestFields.model_fields["fps"].default)

    async def _source(self, own: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """An edit's or an extension's video, base64: uploaded, or a completed video's MP4 (`{"id":
        ...}`); and, for the latter, its size, rate and length, which the new video keeps."""
        video = own.get("video")
        if isinstance(video, bytes):
            return base64.b64encode(video).decode("ascii"), {}
        if not isinstance(video, dict) or not isinstance(video.get("id"), str) or set(video) != {"id"}:
            raise InvalidRequest("video must be an uploaded file, or {\"id\": \"video_...\"} of a completed video",
                                 field="video")
        source = await self._video(video["id"], completed=True)
        meta, outputs = source["job"]["meta"], source.get("outputs", {})
        if "mp4_base64" not in outputs:
            raise InvalidRequest("that video's MP4 is not kept here (it was uploaded)", field="video")
        width, height = _size(meta["size"])
        return outputs["mp4_base64"], {"width": width, "height": height, "fps": meta["fps"],
                                       "num_frames": meta["num_frames"]}

    async def _submit(self, request: Request, inputs: dict[str, Any], notes: list[str],
                      remixed_from: str | None = None) -> Response:
        handler = self.service.loaded
        webhook = inputs.pop("webhook", None)
        call = JobCall("submit", {"inputs": inputs}, webhook=webhook,
                       idempotency_key=request.headers.get("idempotency-key"), request_id=request.state.request_id)
        about = {"model": handler.model.name, "created_at": time.time(), "prompt": inputs.get("prompt"),
                 "remixed_from_video_id": remixed_from}
        submitted = await anyio.to_thread.run_sync(handler.submit_job, call,
                                                   functools.partial(_planned, about, notes))
        job = submitted["job"]
        return self._video_answer(job, {"job": job})

    # -- reading ---------------------------------------------------------------------------------

    @_in_openai_shape
    async def retrieve(self, request: Request) -> Response:
        answer = await self._video(request.path_params["video_id"])
        return self._video_answer(answer["job"], answer)

    @_in_openai_shape
    async def listing(self, request: Request) -> Response:
        query = request.query_params
        limit = _int_query(query.get("limit"), "limit", DEFAULT_PAGE, MAX_PAGE)
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("order must be asc or desc", field="order")
        after = query.get("after")
        after_job = _job_id(after, "after") if after is not None else None
        page, more = await anyio.to_thread.run_sync(self.service.loaded.jobs.listed, after_job, limit,
                                                    order == "desc")
        data = [self._video_object(answer["job"], answer) for answer in map(json.loads, page)]
        return JSONResponse({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": more})

    @_in_openai_shape
    async def delete(self, request: Request) -> Response:
        video_id = request.path_params["video_id"]
        answer = await self._video(video_id)
        await anyio.to_thread.run_sync(self.service.loaded.jobs.delete, answer["job"]["id"])
        return JSONResponse({"id": video_id, "object": "video.deleted", "deleted": True})

    @_in_openai_shape
    async def content(self, request: Request) -> Response:
        variant = request.query_params.get("variant", "video")
        name = VARIANTS.get(variant, variant)
        if name not in FORMATS:
            raise InvalidRequest(f"variant must be one of {', '.join(VARIANTS)} (or an output the video asked for: "
                                 f"{', '.join(f for f in FORMATS if f not in VARIANTS.values())})", field="variant")
        answer = await self._video(request.path_params["video_id"], completed=True)
        encoded = answer.get("outputs", {}).get(f"{name}_base64")
        if encoded is None:
            raise NotFound(f"this video has no {variant} (its outputs: "
                           f"{', '.join(k.removesuffix('_base64') for k in answer.get('outputs', {}))})",
                           field="variant")
        data = await anyio.to_thread.run_sync(base64.b64decode, encoded)
        return ranged(data, FORMATS[name].MIME, request.headers.get("range"),
                      {"Content-Disposition": f'inline; filename="{answer["job"]["id"]}{FORMATS[name].EXT}"'})

    async def _video(self, video_id: str, completed: bool = False) -> dict[str, Any]:
        """A video's job as a poll answers it (parsed off the event loop: a finished one carries its files)."""
        job_id = _job_id(video_id, "video_id")
        jobs = self.service.loaded.jobs
        where = "" if jobs.shared else ", in the memory of the replica that made them"

        def read() -> dict[str, Any]:
            return dict(json.loads(jobs.status_json(job_id)))

        try:
            answer = await anyio.to_thread.run_sync(read)
        except NotFound:
            raise NotFound(f"unknown or expired video id (videos are kept VIDEO_JOB_TTL_S after they end{where})",
                           field="video_id") from None
        if "meta" not in answer["job"]:
            raise NotFound(f"{video_id} is a job of POST /jobs, not a video: GET /jobs/{job_id}", field="video_id")
        status = answer["job"]["status"]
        if completed and status != SUCCEEDED:
            raise NotFound(f"{video_id} is not completed (status {STATUSES[status]}): its content is there once it "
                           "is", field="video_id")
        return answer

    def _video_object(self, job: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        return video_object(job, answer, self.service.loaded.job_settings.ttl_s)

    def _video_answer(self, job: dict[str, Any], answer: dict[str, Any]) -> Response:
        return JSONResponse(self._video_object(job, answer), headers={"openai-poll-after-ms": str(poll_after_ms(job))})

    async def _read(self, request: Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The body's fields and uploaded files: a form (the SDK's uploads; our extra fields typed by
        the request schema) or a JSON object."""
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind == "application/json":
            data = await self.service.read_json(request)
            if not isinstance(data, dict):
                raise Refusal(400, "the body must be a JSON object")
            return data, {}
        if kind != "multipart/form-data":
            raise Refusal(415, f"content type must be multipart/form-data or application/json, not {kind[:100]}")
        body = await self.service.read_body(request)
        try:
            form = await _replayed(request, body).form(max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS,
                                                        max_part_size=self.service.max_body_bytes)
        except HTTPException as exc:  # starlette's words for a malformed form
            raise Refusal(400, f"the form body cannot be read: {str(exc.detail)[:200]}") from None
        pairs: list[tuple[str, str]] = []
        files: dict[str, bytes] = {}
        try:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key in files:
                        raise InvalidRequest("one file per field", field=key[:40])
                    files[key] = await value.read()
                else:
                    pairs.append((key, value))
        finally:
            await form.close()
        fields = read_form(pairs)
        own: dict[str, Any] = {name: fields.pop(name) for name in OWN_FIELDS if name in fields}
        return {**typed_form_fields(fields), **own}, files


def _replayed(request: Request, body: bytes) -> Request:
    """`request` whose body (read already, within its limits) is `body`."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return Request(request.scope, receive)


def _take(fields: dict[str, Any], files: dict[str, bytes], *names: str) -> dict[str, Any]:
    """OpenAI's own fields, out of `fields` (and uploaded `files`); the rest are ours."""
    own = {name: fields.pop(name) for name in names if name in fields}
    own.update({name: files.pop(name) for name in names if name in files})
    return own


def _unless_given(like: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """A source video's size and length, where `size` and `seconds` do not say otherwise."""
    given = {"width", "height"} if own.get("size") is not None else set()
    given |= {"num_frames"} if own.get("seconds") is not None else set()
    return {name: value for name, value in like.items() if name not in given}


def _no_other_files(files: dict[str, bytes]) -> None:
    if files:
        raise InvalidRequest("this route takes no file here", field=next(iter(files))[:40])


def _extras(fields: dict[str, Any]) -> dict[str, Any]:
    for name in fields:
        if name in _NOT_EXTRAS:
            raise InvalidRequest("a video is always a job, answered by these routes: leave this out",
                                 field=str(name)[:40])
    return dict(fields)


def _prompt(own: dict[str, Any]) -> Any:
    if own.get("prompt") is None:
        raise InvalidRequest("prompt is required", field="prompt")
    return own["prompt"]


def _size(size: Any) -> tuple[int, int]:
    match = _SIZE.match(size) if isinstance(size, str) else None
    if match is None:
        raise InvalidRequest("size must be WIDTHxHEIGHT in pixels, e.g. 1280x720", field="size")
    return int(match[1]), int(match[2])


def _seconds(seconds: Any) -> float:
    try:
        value = float(seconds) if isinstance(seconds, str | int | float) and not isinstance(seconds, bool) else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0 or value > 3600:
        raise InvalidRequest("seconds must be a number of seconds above 0, e.g. \"4\"", field="seconds")
    return value


def _outputs(asked: Any) -> Any:
    """MP4, thumbnail and sprite sheet, then what else was asked (a bad value is the schema's to name)."""
    if asked is None:
        return list(ALWAYS)
    if not isinstance(asked, list):
        return asked
    return [*ALWAYS, *(name for name in asked if name not in ALWAYS)]


def _image_of(reference: Any) -> str:
    """`input_reference`: an uploaded image (base64 here), or `{"image_url": "data:..."}`."""
    if isinstance(reference, bytes):
        return base64.b64encode(reference).decode("ascii")
    if isinstance(reference, dict) and set(reference) == {"image_url"} and isinstance(reference["image_url"], str):
        return reference["image_url"]
    raise InvalidRequest("input_reference must be an uploaded image file, or {\"image_url\": \"data:image/...\"}",
                         field="input_reference")


def _job_id(video_id: Any, field: str) -> str:
    if not isinstance(video_id, str) or not video_id.startswith(VIDEO_ID_PREFIX):
        raise NotFound("unknown video id (they begin with video_)", field=field)
    return video_id.removeprefix(VIDEO_ID_PREFIX)


def _int_query(text: str | None, field: str, default: int, most: int) -> int:
    if text is None:
        return default
    if not re.fullmatch(r"\d{1,6}", text, flags=re.ASCII) or not 1 <= int(text) <= most:
        raise InvalidRequest(f"{field} must be a whole number from 1 to {most}", field=field)
    return int(text)


def _planned(about: dict[str, Any], notes: list[str], decoded: Decoded) -> dict[str, Any]:
    """What the store shows with a video: `about` (model, prompt, ...) and its plan, seed included."""
    assert decoded.planned is not None
    job, planned_notes = decoded.planned
    frames = decoded.request.num_frames + len(decoded.extended)
    return {**about, "seconds": f"{frames / job.fps:.3g}", "size": f"{job.width}x{job.height}", "seed": job.seed,
            "num_frames": frames, "fps": job.fps, "num_inference_steps": job.num_inference_steps,
            "guidance_scale": job.guidance_scale, "adjusted": [*notes, *planned_notes]}


def progress(job: dict[str, Any]) -> int:
    """0-100: 0 while it waits, up to 90 over the denoising steps, 95 while the frames are decoded
    and encoded, 100 once it is done."""
    if job["status"] == SUCCEEDED:
        return 100
    step, total = job["progress"]["step"], job["progress"]["total"]
    if not total:
        return 0
    return 95 if step >= total else round(90 * step / total)


def poll_after_ms(job: dict[str, Any]) -> int:
    """When to look again: a tenth of the ETA, between 0.1 and 5 s (1 s for a queued job with no ETA)."""
    if job["status"] in FINISHED:
        return 1000
    eta = job.get("eta_s")
    if eta is None:
        return 1000 if job["status"] == QUEUED else 250
    return int(min(max(eta * 100, 100), 5000))


def video_object(job: dict[str, Any], answer: dict[str, Any], ttl_s: float) -> dict[str, Any]:
    """OpenAI's Video object for a video's job (`answer`: the job's answer, with its error if it
    failed), with what reproduces it (seed, frames, fps, steps) and its place in line."""
    meta = job["meta"]
    status = STATUSES[job["status"]]
    completed = meta["created_at"] + job["elapsed_s"] if job["status"] in FINISHED else None
    error = answer.get("error") if status == "failed" else None
    return {
        "id": VIDEO_ID_PREFIX + job["id"], "object": "video", "model": meta["model"], "status": status,
        "progress": progress(job), "created_at": int(meta["created_at"]),
        "completed_at": None if completed is None else int(completed),
        "expires_at": None if completed is None else int(completed + ttl_s),
        "seconds": meta["seconds"], "size": meta["size"], "prompt": meta["prompt"],
        "remixed_from_video_id": meta.get("remixed_from_video_id"),
        "error": None if error is None else {"code": error["type"], "message": error["message"]},
        # beyond OpenAI's object: what reproduces it, and where it is in line
        "seed": meta["seed"], "num_frames": meta["num_frames"], "fps": meta["fps"],
        "num_inference_steps": meta["num_inference_steps"], "guidance_scale": meta["guidance_scale"],
        "adjusted": meta["adjusted"], "position": job.get("position"), "eta_s": job.get("eta_s"),
    }


def ranged(data: bytes, media_type: str, range_header: str | None, headers: dict[str, str]) -> Response:
    """`data`, or the one byte range the Range header asks (206; 416 past the end): a browser's
    `<video>` seeks with them. A header this does not read (several ranges) gets the whole."""
    size = len(data)
    headers = {**headers, "Accept-Ranges": "bytes"}
    match = re.fullmatch(r"\s*bytes=(\d{0,15})-(\d{0,15})\s*", range_header or "", flags=re.ASCII)
    if match is None or match.groups() == ("", ""):
        return Response(data, media_type=media_type, headers=headers)
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    return Response(data[start:end + 1], status_code=206, media_type=media_type,
                    headers={**headers, "Content-Range": f"bytes {start}-{end}/{size}"})

