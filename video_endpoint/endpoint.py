"""Hugging Face Inference Endpoint custom handler: text-to-video and image-to-video.

The platform calls `EndpointHandler(path)` once and then `handler(data)` per request.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from encoders import cores
from pipelines import speed
from pipelines.base import StepCallback
from video_endpoint import metrics, server_logs, settings, stages, uploads, video_input
from video_endpoint.errors import HandlerError, InvalidRequest
from video_endpoint.jobs import Idempotency, InProcessJobStore, JobSettings, JobStore
from video_endpoint.model_loading import load_model
from video_endpoint.request_schema import JobCall, Limits, read_job_call
from video_endpoint.scheduler import Scheduler
from video_endpoint.stages import Produced
from video_endpoint.webhooks import WebhookSender

logger = logging.getLogger(__name__)


class EndpointHandler:
    def __init__(self, path: str = "", model_id: str | None = None, limits: Limits | None = None) -> None:
        """Load the model once: from `path` when it holds `model_index.json`, else from `model_id`
        or $VIDEO_MODEL_ID (a Hub id, a directory, or `tiny`; see README), else the default Hub id.
        Raises `ModelLoadError` naming what was looked for."""
        self.limits = limits or Limits.from_env()
        self.upload_hosts = settings.host_list("VIDEO_UPLOAD_HOSTS")
        encode_threads = settings.encode_threads()
        self.encode_cores = cores.CoreBudget(encode_threads)  # shared by the answers encoding at once
        if encode_threads > 1:  # the GIF's LZW runs in worker processes: start them while the model loads
            cores.start_workers()
        video_input.remove_stale_input_folders()  # client videos a killed server was reading
        self.model = load_model(path, model_id)
        self.open_jobs(JobSettings.from_env())
        server_logs.configure(settings.read_flag("VIDEO_LOG_PAYLOADS"), self.jobs.replica)
        metrics.serve_state_of(self)
        self.warmup_ms: float | None = None
        if self.model.speed.warmup:  # compile now, so the first user request is not the slow one
            self.warmup_ms = 0.0
            for shape in speed.warmup_shapes(self.model.modes):
                result = self._warm_up(shape)
                self.warmup_ms += result.get("diagnostics", {}).get("timing_ms", {}).get("total", 0.0)
                logger.info("warm-up request: %s", "ok" if result["ok"] else result["error"])
        if self.jobs.shared:  # other replicas fill the store: look for jobs from now on
            self.scheduler.start()

    def _warm_up(self, shape: speed.WarmupShape) -> dict[str, Any]:
        """A warm-up generation as a request of ours, served as any other and counted in no metric."""
        inputs: dict[str, Any] = {"prompt": "warm-up", "num_inference_steps": speed.WARMUP_STEPS, "seed": 0,
                                  "outputs": ["gif"]}
        for name in ("height", "width", "num_frames", "guidance_scale"):
            if getattr(shape, name) is not None:
                inputs[name] = getattr(shape, name)
        if shape.with_image:
            buffer = io.BytesIO()
            Image.new("RGB", (512, 512), (128, 128, 128)).save(buffer, format="PNG")
            inputs["image"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        try:
            return self.deliver(self.scheduler.run(self.decode({"inputs": inputs})))
        except HandlerError as exc:
            return exc.envelope()

    def open_jobs(self, config: JobSettings) -> None:
        """One queue in front of the model, for requests and jobs alike (`Scheduler`); jobs kept in
        the store `config` names (VIDEO_JOB_STORE; this process's memory when unset). Called again,
        it replaces both (the previous scheduler stops)."""
        previous: Scheduler | None = getattr(self, "scheduler", None)
        if previous is not None:
            previous.stop(0)
        self.job_settings = config
        self.webhooks = WebhookSender(config.webhook_hosts, config.webhook_secret)
        self.jobs: JobStore
        if not config.store:  # it asks the scheduler made below (read when a job is described)
            self.jobs = InProcessJobStore(config, lambda: self.scheduler.requests_ahead())
        else:
            from video_endpoint.redis_jobs import RedisJobStore  # redis-py only where a Redis is named

            self.jobs = RedisJobStore(config)
        self.scheduler = Scheduler(self, self.jobs, self.webhooks)
        if previous is not None and self.jobs.shared:
            self.scheduler.start()

    def __call__(self, data: dict[str, Any], on_step: StepCallback | None = None) -> dict[str, Any]:
        """Serve one request; never raises. `on_step(done, total)` reports denoising progress."""
        try:
            call = read_job_call(data)
        except HandlerError as exc:
            metrics.refused("sync", exc)
            return exc.envelope()
        if call.kind != "generate":
            return self.job_request(call)
        return self.generate(call.data, on_step)

    def generate(self, data: Any, on_step: StepCallback | None = None) -> dict[str, Any]:
        """One synchronous request (a body without job keys); never raises."""
        try:
            decoded = self.decode(data)
        except HandlerError as exc:
            metrics.refused("sync", exc)
            return exc.envelope()
        return self.run(decoded, on_step)

    def decode(self, data: Any, cancelled: threading.Event | None = None,
               request_id: str | None = None) -> stages.Decoded:
        """The body parsed and its images and videos decoded, once (`cancelled` set stops a video's
        reading); raises HandlerError for bad input."""
        return self.decode_media(self.parse(data, request_id), cancelled)

    def parse(self, data: Any, request_id: str | None = None) -> stages.Parsed:
        """The body validated, nothing decoded (quick); raises HandlerError for bad input.
        `request_id`: the client's, else a new one (`stages.parse`)."""
        return stages.parse(data, self.limits, self.upload_hosts, request_id)

    def decode_media(self, parsed: stages.Parsed, cancelled: threading.Event | None = None) -> stages.Decoded:
        """`parse`'s request with its images and videos decoded; raises HandlerError for bad input."""
        return stages.decode_media(parsed, self.limits, cancelled)

    def run(self, decoded: stages.Decoded, on_step: StepCallback | None = None) -> dict[str, Any]:
        """Generate and encode what `decode` returned, in its turn on the model, then upload;
        never raises."""
        produced = self.scheduler.run(decoded, on_step)
        answer = metrics.answered("sync", self.deliver(produced), produced)
        logger.info("request %s: %s", decoded.request_id, "ok" if answer["ok"] else answer["error"]["type"],
                    extra={**server_logs.ids(decoded.request_id),
                           **server_logs.finished("sync", answer, produced.mode, decoded.request.prompt)})
        return answer

    def produce(self, decoded: stages.Decoded, on_step: StepCallback | None = None) -> Produced:
        """Generate and encode now, whatever waits for the model (the scheduler's worker calls
        `generate_frames`). The uploads wait for `deliver`."""
        return self.generate_frames(decoded, on_step)()

    def generate_frames(self, decoded: stages.Decoded, on_step: StepCallback | None = None) -> Callable[[], Produced]:
        """Generate: the part that needs the model. Returns the encoding still to do, which needs
        no model (the scheduler runs it while the model generates the next request)."""
        request, timer = decoded.request, decoded.timer
        timer.resume()
        streaming, mode = None, None
        try:
            job, notes = stages.plan(decoded, self.model)
            mode = job.mode
            streaming = stages.Streaming.start(self.model, request, job, self.encode_cores)
            generated = stages.after_extended(stages.generate(self.model, job, timer, on_step, streaming), decoded)
        except Exception as exc:
            if streaming is not None:  # a failed generation: its encoders stop
                streaming.close()
            failed = _failure(exc, "generating")
            failed.mode = mode
            return lambda: failed

        def encode() -> Produced:
            try:
                encoded = stages.encode(generated, request, job, timer, decoded.uploads, self.encode_cores, streaming)
                result = {
                    "ok": True,
                    "outputs": encoded.outputs,
                    "diagnostics": {"request_id": decoded.request_id, **stages.diagnostics(
                        self.model, stages.Outcome(request, job, notes, generated, encoded.info, timer,
                                                   decoded.video, decoded.extend))},
                }
                return Produced(result, encoded.to_upload, decoded.uploads, job.mode)
            except Exception as exc:
                failed = _failure(exc, "encoding")
                failed.mode = job.mode
                return failed
            finally:
                if streaming is not None:
                    streaming.close()

        return encode

    @staticmethod
    def deliver(produced: Produced) -> dict[str, Any]:
        """`produce`'s answer with its files uploaded where the request said; never raises."""
        if not produced.to_upload:
            return produced.result
        started = time.perf_counter()
        try:
            stored = uploads.upload_all(produced.to_upload, produced.where)
        except HandlerError as exc:
            return exc.envelope()
        except Exception:
            logger.exception("upload failed with an unexpected error")
            return HandlerError("internal error while uploading; see the server log").envelope()
        result = produced.result
        result["outputs"] = {**stored, **result["outputs"]}
        timing = result["diagnostics"]["timing_ms"]
        timing["upload"] = round((time.perf_counter() - started) * 1000, 2)
        timing["total"] = round(timing["total"] + timing["upload"], 2)
        return result

    def job_request(self, call: JobCall) -> dict[str, Any]:
        """The job protocol (`video_endpoint.jobs`): submit with `async`, poll with `job_id`, cancel
        with `job_id` + `cancel`. A request is checked before it is queued, so a bad one fails now."""
        try:
            if call.kind != "submit":
                return dict(json.loads(self.jobs.status_json(call.job_id, cancel=call.kind == "cancel")))
            try:
                return self.submit_job(call)
            except HandlerError as exc:
                metrics.refused("job", exc, call.request_id)
                return exc.envelope()
        except HandlerError as exc:
            return exc.envelope()

    def submit_job(self, call: JobCall, meta: Callable[[stages.Decoded], dict[str, Any]] | None = None
                   ) -> dict[str, Any]:
        """Check a job's request (decoded and planned: a bad one fails now) and its webhook, then
        queue it; raises HandlerError. `meta(decoded)`, given the planned request, says what the store
        shows with the job; such a job also keeps its inputs as submitted, seed drawn (`JobStore`)."""
        idempotency = Idempotency.of(call.idempotency_key, call.data, call.webhook)
        if call.webhook is not None:
            self.webhooks.check(call.webhook)
        data = stages.with_seed(call.data)  # drawn now: a job run again (another replica) is the same video
        decoded = self.decode(data, request_id=call.request_id)
        if not decoded.request.return_base64:
            raise InvalidRequest("a job's answer is JSON, fetched later: return_base64 false is for "
                                 "synchronous requests", field="return_base64")
        stages.plan(decoded, self.model)  # mode, family rules, adapters: refused now
        # in memory, it runs from what was decoded here; a shared store keeps the body, decoded where it runs
        payload = data if self.jobs.shared else decoded
        if meta is None:
            return self.jobs.submit(payload, call.webhook, decoded.held_bytes(), idempotency,
                                    request_id=decoded.request_id)
        return self.jobs.submit(payload, call.webhook, decoded.held_bytes(), idempotency, meta(decoded), data["inputs"],
                                decoded.request_id)


def _failure(exc: Exception, doing: str) -> Produced:
    """The answer for what generating or encoding raised (called in its `except`)."""
    if isinstance(exc, HandlerError):
        if exc.__cause__ is not None:
            logger.error("request failed (%s): %s", exc.type, exc.message, exc_info=exc.__cause__)
        return Produced(exc.envelope())
    logger.exception("request failed with an unexpected error")
    return Produced(HandlerError(f"internal error while {doing}; see the server log").envelope())
