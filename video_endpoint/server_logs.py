"""The hosting server's log line about each request. hf-serve (the PyTorch DLC's server and hf-serve
0.2) logs every payload at INFO, `[<id>] Received request with: {payload}`: prompts and whole base64
images, megabytes a request, and it has no setting to stop that. The handler lives in the same
process, so it replaces the payload in that one line by its length, unless the operator sets
`VIDEO_LOG_PAYLOADS=1`. Other servers' and the handler's own lines are left as they are."""

from __future__ import annotations

import logging
import re

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
