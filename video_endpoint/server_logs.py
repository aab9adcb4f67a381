"""The log: what the handler's lines carry, in which format, and what never goes in them.

Every line about a request or a job carries its ids (`ids()`: `extra=` of the logging call): the
request id (the client's X-Request-Id, or one made per call) and the job id. `VIDEO_LOG_FORMAT=json`
writes one JSON object per line (`JsonFormatter`): time, level, logger, event (the readable line),
replica, the ids, and for each finished request or job (`finished()`) its outcome, mode, family,
size, frames, steps and per-stage timings. The default stays readable text. A prompt goes in a line
only with `VIDEO_LOG_PAYLOADS=1`; images, videos and tokens never.

hf-serve (the PyTorch DLC's server and hf-serve 0.2) logs every payload at INFO, `[<id>] Received
request with: {payload}`: prompts and whole base64 images, megabytes a request, and it has no setting
to stop that. The handler lives in the same process, so it replaces the payload in that one line by
its length, unless the operator sets `VIDEO_LOG_PAYLOADS=1`. Other servers' lines are left as they are.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import sys
import time
from typing import Any

from video_endpoint import settings

HF_SERVE_LOGGER = "hf-serve"
_PAYLOAD_LINE = re.compile(r"(\[[^\]\n]*\] )?Received request with: ")


class PayloadRedaction(logging.Filter):
    """Keeps the line (its request id too), drops the payload."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        found = _PAYLOAD_LINE.match(message)
        if found:
            record.msg = (f"{found.group(0)}<{len(message) - found.end()} characters, not logged; "
                          "VIDEO_LOG_PAYLOADS=1 logs them>")
            record.args = None
        return True


def redact_request_payloads() -> None:
    """Install the redaction on hf-serve's logger, once per process."""
    logger = logging.getLogger(HF_SERVE_LOGGER)
    if not any(isinstance(existing, PayloadRedaction) for existing in logger.filters):
        logger.addFilter(PayloadRedaction())


# -- ids and finished requests -----------------------------------------------------------------

ID_FIELDS = ("request_id", "job_id", "attempt")
LOG_PAYLOADS = False
"""VIDEO_LOG_PAYLOADS, as the handler read it at start (`configure`)"""
REPLICA = f"{socket.gethostname()}-{os.getpid()}"
"""this process in the log: the job store's name for it once the handler has one (`configure`)"""


def ids(request_id: str | None, job_id: str | None = None, attempt: int | None = None) -> dict[str, Any]:
    """A line's `extra=`: the ids it is about."""
    return {name: value for name, value in (("request_id", request_id), ("job_id", job_id), ("attempt", attempt))
            if value}


def finished(kind: str, answer: dict[str, Any], mode: str | None = None, prompt: Any = None) -> dict[str, Any]:
    """The `finished` extra of a request's or job's last line: what it was and how it went."""
    fields: dict[str, Any] = {"kind": kind, "outcome": "ok" if answer.get("ok") else answer["error"]["type"]}
    if not answer.get("ok"):
        fields.update(mode=mode, error_field=answer["error"].get("field"))
    else:
        diagnostics = answer["diagnostics"]
        fields.update(mode=diagnostics["mode"], family=diagnostics["model"]["family"],
                      width=diagnostics["width"], height=diagnostics["height"], frames=diagnostics["num_frames"],
                      steps=diagnostics["num_inference_steps"], timing_ms=diagnostics["timing_ms"])
    if LOG_PAYLOADS and prompt is not None:
        fields["prompt"] = prompt
    return {"finished": fields}


# -- the format --------------------------------------------------------------------------------

class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage(),
            "replica": REPLICA}
        line.update({name: getattr(record, name) for name in ID_FIELDS if getattr(record, name, None)})
        line.update(getattr(record, "finished", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


OUR_LOGGERS = ("video_endpoint", "pipelines", "encoders")
FORMATS = ("text", "json")


@functools.cache  # said once per process, however many readers ask
def _wants_json(log_format: str) -> bool:
    chosen = log_format.strip().lower()
    if chosen not in FORMATS:
        logging.getLogger(__name__).warning("VIDEO_LOG_FORMAT=%r is not one of %s: logging text", log_format[:40],
                                            ", ".join(FORMATS))
    return chosen == "json"


def json_lines() -> bool:
    """VIDEO_LOG_FORMAT=json; another value than text or json is said in the log, and logs text."""
    return _wants_json(settings.read("VIDEO_LOG_FORMAT"))


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_process() -> None:
    """The local server's process, before the libraries are imported: every line in VIDEO_LOG_FORMAT's
    format, the libraries' too."""
    if json_lines():
        logging.basicConfig(level=logging.INFO, handlers=[json_handler()])
        libraries_through_root()
    else:
        logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)


def configure(payloads: bool, replica: str) -> None:
    """The handler's logs as VIDEO_LOG_FORMAT and VIDEO_LOG_PAYLOADS say. With `json`, where the
    process's root logger does not write JSON already (the local server's does), the handler's own
    loggers get a JSON handler of their own: the hosting server's lines stay as it writes them."""
    global LOG_PAYLOADS, REPLICA
    LOG_PAYLOADS, REPLICA = payloads, replica
    if not payloads:
        redact_request_payloads()
    if not json_lines() or _writes_json(logging.getLogger()):
        return
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        if not _writes_json(logger):
            logger.addHandler(json_handler())
            logger.setLevel(logging.INFO)
            logger.propagate = False


def libraries_through_root() -> None:
    """diffusers' and transformers' lines through the root logger (JSON there, with the local server's
    json format), and no progress bars (a bar is not a line)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_default_handler()
        library.enable_propagation()
        library.disable_progress_bar()


def json_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


def _writes_json(logger: logging.Logger) -> bool:
    return any(isinstance(handler.formatter, JsonFormatter) for handler in logger.handlers)


def uvicorn_log_config() -> dict[str, Any] | None:
    """uvicorn's logging config for `json` (its lines, access lines too, as JSON); None: its own."""
    if not json_lines():
        return None
    formatter = {"()": f"{__name__}.JsonFormatter"}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": formatter},
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                     "stream": "ext://sys.stderr"}},
            "loggers": {"uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
                        "uvicorn.error": {"level": "INFO"},
                        "uvicorn.access": {"handlers": ["default"], "level": "INFO", "propagate": False}}}
