"""video_endpoint/server_logs.py: hf-serve's per-request log line loses its payload."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import jpeg_base64
from video_endpoint.server_logs import HF_SERVE_LOGGER, PayloadRedaction, redact_request_payloads


@pytest.fixture
def hf_serve_log(caplog):
    caplog.set_level(logging.INFO, logger=HF_SERVE_LOGGER)
    logger = logging.getLogger(HF_SERVE_LOGGER)
    kept = list(logger.filters)
    yield logger, caplog
    logger.filters[:] = kept


def test_the_payload_line_keeps_its_request_id_and_loses_the_payload(hf_serve_log):
    logger, caplog = hf_serve_log
    redact_request_payloads()
    redact_request_payloads()  # once per process, however often handlers are made
    assert sum(isinstance(f, PayloadRedaction) for f in logger.filters) == 1
    payload = {"inputs": {"prompt": "a secret birthday surprise", "image": jpeg_base64()}}
    logger.info(f"[req-7] Received request with: {payload}")  # exactly as hf-serve writes it
    logger.info("Loaded model_dir='/repository' with task='custom' on device='auto'.")
    [line, other] = [record.getMessage() for record in caplog.records]
    assert line.startswith("[req-7] Received request with: <") and "characters, not logged" in line
    assert "secret" not in caplog.text and payload["inputs"]["image"][:40] not in caplog.text
    assert str(len(str(payload))) in line
    assert other.startswith("Loaded model_dir=")


def test_the_handler_redacts_unless_told_not_to(hf_serve_log, tiny_model_dir, monkeypatch):
    from handler import EndpointHandler

    logger, caplog = hf_serve_log
    logger.filters.clear()
    monkeypatch.setenv("VIDEO_LOG_PAYLOADS", "1")
    EndpointHandler(str(tiny_model_dir))
    logger.info("[1] Received request with: {'inputs': {'prompt': 'kept on purpose'}}")
    assert "kept on purpose" in caplog.text
    monkeypatch.delenv("VIDEO_LOG_PAYLOADS")
    EndpointHandler(str(tiny_model_dir))
    logger.info("[2] Received request with: {'inputs': {'prompt': 'not this one'}}")
    assert "not this one" not in caplog.text
