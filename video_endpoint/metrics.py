"""What the endpoint counts, as Prometheus metrics (prometheus-client, the process's default
registry): the local server exports them at `GET /metrics`; in any other server that imports
handler.py they are in the same process, where `prometheus_client.generate_latest()` renders them.

Counted once per request at the points every door goes through: `answered` when a synchronous
request is answered or a job ends, `refused` when a request or a job submission is refused before
it reached the model (also logged here, as that request's last line). The queue, the job store, the
GPU and the model are read when scraped (`StateCollector`).

Names follow Prometheus' conventions (`video_endpoint_..._seconds`, counters end in `_total`); label
values are closed sets (a field a client made up is counted as `other`).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from video_endpoint import server_logs
from video_endpoint.errors import STATUS, HandlerError, envelope_of
from video_endpoint.request_schema import RequestFields

if TYPE_CHECKING:
    from video_endpoint.stages import Produced

logger = logging.getLogger(__name__)

PREFIX = "video_endpoint"
KINDS = ("sync", "job")
"""sync: a request answered on its connection; job: a job (`POST /jobs`, `async`, /v1/videos)"""
NO_MODE = "none"
"""the mode label of a request refused before it was planned"""
# seconds to minutes: an input decodes in milliseconds, a card-size video takes minutes
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
                   300.0, 600.0, 1200.0, 1800.0, 3600.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGES = ("input_decode", "queue_wait", "denoise", "vae_decode", "upload")

REQUESTS = Counter(f"{PREFIX}_requests", "Requests answered (sync) or jobs ended or refused at submit (job), "
                   "by outcome (ok or the error type) and mode (t2v, i2v, flf2v, keyframes, v2v, extend; none: "
                   "refused before planning)", ["kind", "outcome", "mode"])
REFUSALS = Counter(f"{PREFIX}_refusals", "Requests refused for their input, by the field the error names "
                   "(none: the body as a whole; other: a field the schema does not have)", ["field"])
REQUEST_SECONDS = Histogram(f"{PREFIX}_request_seconds", "From a request's arrival (a job's submission) to "
                            "its answer, of requests and jobs answered ok", ["kind"], buckets=SECONDS_BUCKETS)
STAGE_SECONDS = Histogram(f"{PREFIX}_stage_seconds", "Time in each stage of requests and jobs answered ok: "
                          + ", ".join(STAGES), ["stage"], buckets=SECONDS_BUCKETS)
ENCODE_SECONDS = Histogram(f"{PREFIX}_encode_seconds", "From the end of generating to the end of a format's "
                           "encoding (the time the answer waited for it)", ["format"], buckets=SECONDS_BUCKETS)
STEP_SECONDS = Histogram(f"{PREFIX}_denoise_step_seconds", "Seconds per denoising step (a request's denoising "
                         "time over its steps)", buckets=STEP_BUCKETS)
JOB_ATTEMPTS = Counter(f"{PREFIX}_job_attempts", "Job attempts started on this replica (a job run again after "
                       "a replica stopped or died counts again)")
JOB_REQUEUES = Counter(f"{PREFIX}_job_requeues", "Jobs run again: started with an attempt number above 1 (the "
                       "replica that ran them stopped or died)")
JOB_HANDBACKS = Counter(f"{PREFIX}_job_handbacks", "Jobs this replica gave back to the shared store as it stopped")
WEBHOOKS = Counter(f"{PREFIX}_webhook_deliveries", "Webhook deliveries by outcome (delivered, failed: not "
                   "accepted after its retries)", ["outcome"])
JOB_STORE_ERRORS = Counter(f"{PREFIX}_job_store_errors", "Calls to the shared job store that failed (not "
                           "answering, or refused)")

# the series a rate is taken of exist from the start, at 0: a rate needs a sample before the first request
for _kind in KINDS:
    REQUEST_SECONDS.labels(_kind)
for _stage in STAGES:
    STAGE_SECONDS.labels(_stage)
for _outcome in ("delivered", "failed"):
    WEBHOOKS.labels(_outcome)

# field labels: what the request schema and the routes' own fields can name, nothing a client made up
_FIELDS = frozenset(RequestFields.model_fields) | {
    "inputs", "parameters", "async", "job_id", "cancel", "webhook", "idempotency_key", "authorization", "body",
    "model", "size", "seconds", "input_reference", "video", "after", "limit", "order", "variant"}
_FIELD_HEAD = re.compile(r"[A-Za-z_]+")


def field_label(field: str | None) -> str:
    """The bounded label of an error's field: its first name (`loras[0].name` -> `loras`)."""
    if not field:
        return "none"
    head = _FIELD_HEAD.match(field)
    return head.group(0) if head and head.group(0) in _FIELDS else "other"


def outcome_label(error_type: str) -> str:
    return error_type if error_type in STATUS else "internal"


def refused(kind: str, error: HandlerError | dict[str, Any], request_id: str | None = None) -> None:
    """A request (or a job's submission) refused before it reached the model: `error` raised, or
    the envelope's `error` it was answered with. Counted, and logged as the request's last line."""
    said = error.envelope()["error"] if isinstance(error, HandlerError) else error
    REQUESTS.labels(kind, outcome_label(said.get("type", "")), NO_MODE).inc()
    if said.get("type") == "invalid_request":
        REFUSALS.labels(field_label(said.get("field"))).inc()
    logger.info("%s %s: refused, %s (%s)", "request" if kind == "sync" else "job submitted by request",
                request_id or "-", said.get("type"), said.get("field"),
                extra={**server_logs.ids(request_id), **server_logs.finished(kind, envelope_of(said))})


def answered(kind: str, answer: dict[str, Any], produced: Produced | None = None) -> dict[str, Any]:
    """A request that reached the model, answered (a job: ended) with `answer`, which is returned;
    `produced` says its mode (when planned) and how long it waited. An answer ok feeds the latency
    histograms from its diagnostics."""
    mode, waited_s = (produced.mode, produced.waited_s) if produced is not None else (None, None)
    if not answer.get("ok"):
        REQUESTS.labels(kind, outcome_label(answer.get("error", {}).get("type", "")), mode or NO_MODE).inc()
        return answer
    diagnostics = answer["diagnostics"]
    REQUESTS.labels(kind, "ok", diagnostics["mode"]).inc()
    timing = diagnostics["timing_ms"]
    REQUEST_SECONDS.labels(kind).observe(timing["total"] / 1000 + (waited_s or 0.0))
    if waited_s is not None:
        STAGE_SECONDS.labels("queue_wait").observe(max(0.0, waited_s))
    for stage, seconds in stage_seconds(timing).items():
        STAGE_SECONDS.labels(stage).observe(seconds)
    for name, milliseconds in timing.items():
        if name.startswith("encode."):
            ENCODE_SECONDS.labels(name.removeprefix("encode.")).observe(milliseconds / 1000)
    steps = diagnostics.get("num_inference_steps") or 0
    if steps and "generate.denoise" in timing:
        STEP_SECONDS.observe(timing["generate.denoise"] / 1000 / steps)
    return answer


def stage_seconds(timing_ms: dict[str, float]) -> dict[str, float]:
    """The stages of `STAGES` a request's `timing_ms` (diagnostics) has, in seconds."""
    decoded = [ms for name, ms in timing_ms.items() if name.endswith("_decode") and "." not in name]
    stages = {"input_decode": sum(decoded) if decoded else None, "denoise": timing_ms.get("generate.denoise"),
              "vae_decode": timing_ms.get("generate.vae_decode"), "upload": timing_ms.get("upload")}
    return {name: ms / 1000 for name, ms in stages.items() if ms is not None}


class _Described(Protocol):
    def describe(self) -> dict[str, Any]: ...


class _Counted(Protocol):
    def counts(self) -> dict[str, int] | None: ...


class _Model(_Described, Protocol):
    @property
    def device(self) -> Any: ...
    @property
    def dtype(self) -> Any: ...


class Served(Protocol):
    """What is read of the handler (`EndpointHandler`) when scraped."""

    @property
    def scheduler(self) -> _Described: ...
    @property
    def jobs(self) -> _Counted: ...
    @property
    def model(self) -> _Model: ...


# read when scraped (`StateCollector`): name -> (help, labels)
STATE_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "queue_waiting": ("Requests (sync: this replica's) and jobs (job: the job store's, every replica's on "
                      "Redis) waiting for the model", ("kind",)),
    "running": ("Generations on this replica's model, by kind (0 or 1)", ("kind",)),
    "jobs": ("Jobs in the job store by status: queued, running, finished (kept for polling); on Redis every "
             "replica reports the same store: aggregate with max, not sum", ("status",)),
    "gpu_memory_bytes": ("GPU memory of this process (where CUDA is present): allocated, reserved by the caching "
                         "allocator, peak allocated (since the last generation began)", ("kind",)),
}
MODEL_INFO = ("model", "The model this replica serves", ("model", "family", "class_name", "device", "dtype"))


def _gauge(name: str) -> GaugeMetricFamily:
    help_text, labels = STATE_GAUGES[name]
    return GaugeMetricFamily(f"{PREFIX}_{name}", help_text, labels=list(labels))


class StateCollector(Collector):
    """What is read when scraped: the queue (this replica's), the jobs (the store's: shared by every
    replica on Redis), the model, and the GPU's memory where CUDA is present."""

    def __init__(self) -> None:
        self.handler: weakref.ReferenceType[Served] | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # read only when scraped: never during registration

    def collect(self) -> Iterator[Metric]:
        handler = self.handler() if self.handler is not None else None
        if handler is None:
            return
        queue, counts = handler.scheduler.describe(), handler.jobs.counts()
        waiting, running = _gauge("queue_waiting"), _gauge("running")
        waiting.add_metric(["sync"], queue["waiting"])
        if counts is not None:  # the store is not answering: no number rather than a wrong one
            waiting.add_metric(["job"], counts["queued"])
        for kind, label in (("request", "sync"), ("job", "job")):
            running.add_metric([label], 1 if queue["running"] == kind else 0)
        yield waiting
        yield running
        if counts is not None:
            jobs = _gauge("jobs")
            for status, count in counts.items():
                jobs.add_metric([status], count)
            yield jobs
        model = handler.model.describe()
        info = InfoMetricFamily(f"{PREFIX}_{MODEL_INFO[0]}", MODEL_INFO[1])
        info.add_metric([], {"model": str(model["id"]), "family": str(model["family"]),
                             "class_name": str(model["class_name"]), "device": str(handler.model.device),
                             "dtype": str(handler.model.dtype).removeprefix("torch.")})
        yield info
        yield from _gpu_memory(handler)


def _gpu_memory(handler: Served) -> Iterator[Metric]:
    device = handler.model.device
    if getattr(device, "type", None) != "cuda":
        return
    import torch

    memory = _gauge("gpu_memory_bytes")
    memory.add_metric(["allocated"], torch.cuda.memory_allocated(device))
    memory.add_metric(["reserved"], torch.cuda.memory_reserved(device))
    memory.add_metric(["peak"], torch.cuda.max_memory_allocated(device))
    yield memory


STATE = StateCollector()
REGISTRY.register(STATE)


def serve_state_of(handler: Served) -> None:
    """Report `handler`'s queue, jobs and model when scraped (the last one given, one per process)."""
    STATE.handler = weakref.ref(handler)


COUNTED = (REQUESTS, REFUSALS, REQUEST_SECONDS, STAGE_SECONDS, ENCODE_SECONDS, STEP_SECONDS, JOB_ATTEMPTS,
           JOB_REQUEUES, JOB_HANDBACKS, WEBHOOKS, JOB_STORE_ERRORS)


def markdown_table() -> str:
    """docs/operations.md's list of the metrics (a test keeps it equal)."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for metric in COUNTED:
        [family] = metric.describe()
        shown = f"{family.name}_total" if family.type == "counter" else family.name
        names = ", ".join(metric._labelnames)  # prometheus-client keeps them only there
        rows.append(f"| `{shown}` | {family.type} | {names} | {family.documentation} |")
    for name, (help_text, labels) in STATE_GAUGES.items():
        rows.append(f"| `{PREFIX}_{name}` | gauge | {', '.join(labels)} | {help_text} |")
    rows.append(f"| `{PREFIX}_{MODEL_INFO[0]}_info` | info | {', '.join(MODEL_INFO[2])} | {MODEL_INFO[1]} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
