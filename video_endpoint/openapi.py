"""The local server's OpenAPI 3.1 description (`GET /openapi.json`), generated from the request
schema README's table comes from, with the job routes; the configured limits are the server's own
(an answer names the setting when a request is over one)."""

from __future__ import annotations

from typing import Any

from encoders.registry import FORMATS
from video_endpoint.request_schema import VideoRequest

_REF = "#/components/schemas/{model}"


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def _answers(ok: str, *errors: int, files: bool = False) -> dict[str, Any]:
    content = _json(ok)
    if files:  # Accept: <a format's type>, return_base64 false, or the task shape: the file itself
        content.update({FORMATS[name].MIME: {"schema": {"type": "string", "format": "binary"}} for name in FORMATS})
    answers: dict[str, Any] = {"200": {"description": "the answer", "content": content}}
    reasons = {400: "bad input, or a request the model cannot serve", 401: "missing or wrong bearer token",
               404: "unknown or expired job", 408: "the body took too long to arrive", 413: "body too large",
               499: "the client went away", 500: "generation failed", 502: "an upload was refused",
               503: "busy, or the job store is unavailable: retry after Retry-After seconds"}
    for status in errors:
        answers[str(status)] = {"description": reasons[status], "content": _json("Error")}
    return answers


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
    job_id = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    body = {"required": True, "content": _json("Body")}
    idempotency_key = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                       "description": "a resubmission with the same key answers the same job"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "video-endpoint", "version": "1",
                 "description": "Text-, image- and video-to-video. Every route needs `Authorization: Bearer "
                                "<token>` when the server has one, except /healthz."},
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/": {"post": {"summary": "Generate (or submit, poll, cancel a job)", "requestBody": body,
                           "responses": _answers("Answer", 400, 401, 408, 413, 499, 500, 502, 503, files=True)}},
            "/jobs": {"post": {"summary": "Submit a job", "requestBody": body, "parameters": [idempotency_key],
                               "responses": {**_answers("Answer", 400, 401, 408, 413, 503),
                                             "202": {"description": "queued", "content": _json("Answer")}}}},
            "/jobs/{job_id}": {
                "parameters": job_id,
                "get": {"summary": "A job's status (and answer)", "responses": _answers("Answer", 401, 404, 503)},
                "delete": {"summary": "Cancel a job", "responses": _answers("Answer", 401, 404, 503)}},
            "/jobs/{job_id}/events": {
                "parameters": job_id,
                "get": {"summary": "A job's progress as Server-Sent Events", "responses": {
                    "200": {"description": "progress events, then the result",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    **{k: v for k, v in _answers("Answer", 401, 404, 503).items() if k != "200"}}}},
            "/health": {"get": {"summary": "The model, queue and jobs", "responses": {
                "200": {"description": "ready", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": _answers("Answer", 401)["401"]}}},
            "/healthz": {"get": {"summary": "Liveness, without a token", "security": [], "responses": {
                "200": {"description": "alive", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": _answers("Answer", 401)["401"]}}},
        },
    }
