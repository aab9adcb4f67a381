"""The local server's OpenAPI 3.1 description (`GET /openapi.json`): its paths from the route table
(`routes.ROUTES`), its request schema from the one README's table comes from; the configured
limits are the server's own (an answer names the setting when a request is over one)."""

from __future__ import annotations

import re
from typing import Any

from encoders.registry import FORMATS
from video_endpoint.request_schema import VideoRequest
from video_endpoint.routes import ROUTES, Operation, Route

_REF = "#/components/schemas/{model}"


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


_REASONS = {400: "bad input, or a request the model cannot serve", 401: "missing or wrong bearer token",
            404: "unknown or expired id", 408: "the body took too long to arrive", 413: "body too large",
            415: "a content type this route does not read", 416: "a byte range past the end",
            429: "busy: retry after Retry-After seconds (the OpenAI SDKs do)", 499: "the client went away",
            500: "generation failed", 502: "an upload was refused",
            503: "busy, or the job store is unavailable: retry after Retry-After seconds"}
QUERY: dict[str, dict[str, Any]] = {
    "after": {"schema": {"type": "string"}, "description": "the last video id of the previous page"},
    "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
    "order": {"schema": {"enum": ["asc", "desc"], "default": "desc"}, "description": "by creation time"},
    "variant": {"schema": {"type": "string", "default": "video"},
                "description": "video (MP4), thumbnail (WebP), spritesheet (JPEG), or another output it asked for"},
}
HEADERS: dict[str, dict[str, Any]] = {"Idempotency-Key": {"schema": {"type": "string"},
                               "description": "a resubmission with the same key answers the same job"}}


def _operation(route: Route, operation: Operation) -> dict[str, Any]:
    error_schema = "OpenAIError" if route.openai else "Error"
    answer = _json(operation.answer) if operation.answer else {
        "application/json": {"schema": {"type": "object"}}}
    if operation.media == "files":  # Accept: <a format's type>, return_base64 false, or the task shape
        answer.update({FORMATS[name].MIME: {"schema": {"type": "string", "format": "binary"}} for name in FORMATS})
    elif operation.media == "events":
        answer = {"text/event-stream": {"schema": {"type": "string"}}}
    elif operation.media == "text":
        answer = {"text/plain": {"schema": {"type": "string"}}}
    elif operation.media == "content":
        answer = {FORMATS[name].MIME: {"schema": {"type": "string", "format": "binary"}} for name in FORMATS}
    answers: dict[str, Any] = {str(operation.status): {"description": "the answer", "content": answer}}
    if operation.media == "content":
        answers["206"] = {"description": "the byte range asked (Range)", "content": answer}
    for status in operation.errors:
        answers[str(status)] = {"description": _REASONS[status], "content": _json(error_schema)}
    spec: dict[str, Any] = {"summary": operation.summary, "responses": answers}
    if route.public:
        spec["security"] = []
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"{(\w+)}", route.path)]
    parameters += [{"name": name, "in": "query", "required": False, **QUERY[name]} for name in operation.query]
    parameters += [{"name": name, "in": "header", "required": False, **HEADERS[name]} for name in operation.headers]
    if parameters:
        spec["parameters"] = parameters
    if operation.body or operation.form:
        content = _json(operation.body) if operation.body else {}
        if operation.form:
            content["multipart/form-data"] = {"schema": {"$ref": f"#/components/schemas/{operation.form}"}}
        spec["requestBody"] = {"required": True, "content": content}
    return spec


def document() -> dict[str, Any]:
    request = VideoRequest.model_json_schema(ref_template=_REF)
    schemas: dict[str, Any] = request.pop("$defs", {})
    schemas["VideoRequest"] = request
    schemas["Body"] = {
        "type": "object", "required": ["inputs"],
        "properties": {
            "inputs": {"oneOf": [
                {"$ref": "#/components/schemas/VideoRequest"},
                {"type": "string", "description": "the Hugging Face task shape: the prompt, or a base64 image "
                                                  "(then the prompt goes in parameters)"}]},
            "parameters": {"type": "object", "description": "with a string `inputs`: the request's other fields"}},
        "description": "`inputs` may also carry the job keys: `async`, `webhook`, `idempotency_key`; or be a poll: "
                       "`job_id`, `cancel`"}
    schemas["Error"] = {"type": "object", "required": ["ok", "error"], "properties": {
        "ok": {"const": False},
        "error": {"type": "object", "required": ["type", "field", "message"], "properties": {
            "type": {"type": "string"}, "field": {"type": ["string", "null"]}, "message": {"type": "string"}}}}}
    schemas["Answer"] = {"type": "object", "required": ["ok"], "properties": {
        "ok": {"type": "boolean"}, "outputs": {"type": "object"}, "diagnostics": {"type": "object"},
        "job": {"type": "object"}, "error": {"type": "object"}}}
    schemas.update(openai_schemas())
    paths = {route.path: {operation.method.lower(): _operation(route, operation) for operation in route.operations
                          if operation.method != "HEAD"} for route in ROUTES}
    return {
        "openapi": "3.1.0",
        "info": {"title": "video-endpoint", "version": "1",
                 "description": "Text-, image- and video-to-video, and OpenAI's Videos API under /v1. Every route "
                                "needs `Authorization: Bearer <token>` when the server has one, except /healthz."},
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


def openai_schemas() -> dict[str, Any]:
    """OpenAI's Videos API objects as these routes answer them (extra fields: this endpoint's own)."""
    text, number = {"type": "string"}, {"type": "integer"}
    nullable_text, nullable_number = {"type": ["string", "null"]}, {"type": ["integer", "null"]}
    extras = {"description": "any field of VideoRequest (as text in a form; nested ones as loras[][name])"}
    video_ref = {"oneOf": [{"type": "string", "format": "binary"},
                           {"type": "object", "required": ["id"], "properties": {"id": text}}]}
    return {
        "OpenAIError": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["message", "type", "param", "code"], "properties": {
                "message": text, "type": text, "param": nullable_text, "code": nullable_text}}}},
        "Video": {"type": "object", "required": ["id", "object", "model", "status", "progress", "created_at",
                                                 "seconds", "size"], "properties": {
            "id": text, "object": {"const": "video"}, "model": text,
            "status": {"enum": ["queued", "in_progress", "completed", "failed"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100}, "created_at": number,
            "completed_at": nullable_number, "expires_at": nullable_number, "seconds": text, "size": text,
            "prompt": nullable_text, "remixed_from_video_id": nullable_text,
            "error": {"type": ["object", "null"], "properties": {"code": text, "message": text}},
            "seed": number, "num_frames": number, "fps": number, "num_inference_steps": number,
            "guidance_scale": {"type": "number"}, "adjusted": {"type": "array", "items": text},
            "position": nullable_number, "eta_s": {"type": ["number", "null"]}}},
        "VideoList": {"type": "object", "required": ["object", "data", "has_more"], "properties": {
            "object": {"const": "list"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Video"}},
            "first_id": nullable_text, "last_id": nullable_text, "has_more": {"type": "boolean"}}},
        "VideoDeleted": {"type": "object", "required": ["id", "object", "deleted"], "properties": {
            "id": text, "object": {"const": "video.deleted"}, "deleted": {"type": "boolean"}}},
        "Model": {"type": "object", "required": ["id", "object"], "properties": {
            "id": text, "object": {"const": "model"}, "created": number, "owned_by": text}},
        "ModelList": {"type": "object", "required": ["object", "data"], "properties": {
            "object": {"const": "list"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}},
        "VideoCreate": {"type": "object", "required": ["prompt"], "additionalProperties": extras, "properties": {
            "prompt": text, "model": text, "size": {"type": "string", "pattern": r"^\d+x\d+$"},
            "seconds": text, "input_reference": {"oneOf": [
                {"type": "string", "format": "binary"},
                {"type": "object", "required": ["image_url"], "properties": {"image_url": text}}]}}},
        "VideoRemix": {"type": "object", "required": ["prompt"], "additionalProperties": extras,
                       "properties": {"prompt": text}},
        "VideoEdit": {"type": "object", "required": ["prompt", "video"], "additionalProperties": extras,
                      "properties": {"prompt": text, "video": video_ref, "size": text, "seconds": text}},
        "VideoExtend": {"type": "object", "required": ["prompt", "video", "seconds"], "additionalProperties": extras,
                        "properties": {"prompt": text, "video": video_ref, "seconds": text, "size": text}},
    }
