"""Every route of the local server, written once: the app (`server.create_app`), the answer to an
unknown path and the OpenAPI document (`openapi.document`) are all made from `ROUTES`.

An operation names the method of the server's state that answers it (`endpoint`, a dotted
attribute path: `videos.create` is `OpenAIVideos.create`) and what OpenAPI says of it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    method: str
    endpoint: str
    """the attribute of the server's state that answers it"""
    summary: str
    body: str | None = None
    """the component schema of its JSON body, if it takes one"""
    form: str | None = None
    """the component schema of its multipart/form-data body (the OpenAI SDK's uploads)"""
    answer: str = "Answer"
    """the component schema of its JSON answer ("" = no schema: an object)"""
    status: int = 200
    media: str = "json"
    """json; files (a format's file, by Accept); events (Server-Sent Events); content (a video or image);
    text (Prometheus' text format)"""
    errors: tuple[int, ...] = (401,)
    query: tuple[str, ...] = ()
    """its query parameters, by name (`openapi.QUERY`)"""
    headers: tuple[str, ...] = ()
    """its request headers, by name (`openapi.HEADERS`)"""


@dataclass(frozen=True)
class Route:
    path: str
    operations: tuple[Operation, ...]
    public: bool = False
    """answered without the bearer token (a platform's liveness probe carries none)"""

    @property
    def openai(self) -> bool:
        """OpenAI's API: its errors in OpenAI's shape."""
        return self.path.startswith(OPENAI_PREFIX)

    @property
    def methods(self) -> list[str]:
        return [operation.method for operation in self.operations]


OPENAI_PREFIX = "/v1/"
METRICS_PATH = "/metrics"
_VIDEO = "/v1/videos/{video_id}"
_OPENAI_ERRORS = (400, 401, 404, 429, 503)

ROUTES: tuple[Route, ...] = (
    Route("/", (Operation("POST", "predict", "Generate (or submit, poll, cancel a job)", body="Body",
                          media="files", errors=(400, 401, 408, 413, 499, 500, 502, 503)),)),
    Route("/health", (Operation("GET", "health", "The model, queue and jobs", answer=""),)),
    Route("/healthz", (Operation("GET", "alive", "Liveness, without a token", answer="", errors=()),
                       Operation("HEAD", "alive", "Liveness, without a token", answer="", errors=())), public=True),
    Route("/openapi.json", (Operation("GET", "openapi", "This document", answer=""),)),
    Route(METRICS_PATH, (Operation("GET", "metrics", "Prometheus metrics (without a token where "
                                   "VIDEO_METRICS_PUBLIC=1)", answer="", media="text"),)),
    Route("/jobs", (Operation("POST", "submit_job", "Submit a job", body="Body", status=202,
                              errors=(400, 401, 408, 413, 503), headers=("Idempotency-Key",)),)),
    Route("/jobs/{job_id}", (Operation("GET", "job_status", "A job's status (and answer)", errors=(401, 404, 503)),
                             Operation("DELETE", "job_status", "Cancel a job", errors=(401, 404, 503)))),
    Route("/jobs/{job_id}/events", (Operation("GET", "job_events", "A job's progress as Server-Sent Events",
                                              media="events", errors=(401, 404, 503)),)),
    # OpenAI's Videos API (video_endpoint.openai_videos)
    Route("/v1/models", (Operation("GET", "videos.models", "The served model (OpenAI's list)", answer="ModelList"),)),
    Route("/v1/models/{model_id}", (Operation("GET", "videos.model", "The served model", answer="Model",
                                              errors=(401, 404)),)),
    Route("/v1/videos", (
        Operation("POST", "videos.create", "Create a video (a job)", body="VideoCreate", form="VideoCreate",
                  answer="Video", errors=(*_OPENAI_ERRORS, 413), headers=("Idempotency-Key",)),
        Operation("GET", "videos.listing", "The videos kept, newest first", answer="VideoList",
                  errors=(400, 401, 404, 503), query=("after", "limit", "order")))),
    # the fixed paths under /v1/videos first: a path matched in part answers 405 with the first match's methods
    Route("/v1/videos/edits", (Operation("POST", "videos.edit", "Video-to-video from an upload or a finished video",
                                         body="VideoEdit", form="VideoEdit", answer="Video",
                                         errors=(*_OPENAI_ERRORS, 413)),)),
    # OpenAI's characters: not served, said so (a 404 naming the routes that are)
    Route("/v1/videos/characters", (Operation("POST", "videos.not_served", "Not served: 404", answer="",
                                              errors=(401, 404)),)),
    Route("/v1/videos/characters/{character_id}", (Operation("GET", "videos.not_served", "Not served: 404",
                                                             answer="", errors=(401, 404)),)),
    Route("/v1/videos/extensions", (Operation("POST", "videos.extend", "A finished video continued by `seconds`",
                                              body="VideoExtend", form="VideoExtend", answer="Video",
                                              errors=(*_OPENAI_ERRORS, 413)),)),
    Route(_VIDEO, (Operation("GET", "videos.retrieve", "A video: status, progress, parameters", answer="Video",
                             errors=(401, 404, 503)),
                   Operation("DELETE", "videos.delete", "Stop a video's job and delete it", answer="VideoDeleted",
                             errors=(401, 404, 503)))),
    Route(_VIDEO + "/content", (Operation("GET", "videos.content", "The MP4 (Range requests), its thumbnail or "
                                          "sprite sheet", answer="", media="content", errors=(400, 401, 404, 416, 503),
                                          query=("variant",)),)),
    Route(_VIDEO + "/remix", (Operation("POST", "videos.remix", "The same video with a new prompt", body="VideoRemix",
                                        answer="Video", errors=_OPENAI_ERRORS),)),
)


def listing() -> str:
    """The routes as an unknown path's answer lists them."""
    return ", ".join(f"{'|'.join(route.methods)} {route.path}" for route in ROUTES)
