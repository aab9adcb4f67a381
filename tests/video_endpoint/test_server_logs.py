"""video_endpoint/server_logs.py: hf-serve's per-request log line loses its payload; JSON lines."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import jpeg_base64
from video_endpoint.server_logs import HF_SERVE_LOGGER, PayloadRedaction, redact_request_payloads

ROOT = Path(__file__).resolve().parents[2]


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


def test_a_json_line_carries_the_ids_and_what_finished():
    from video_endpoint import server_logs

    record = logging.getLogger("video_endpoint.test").makeRecord(
        "video_endpoint.test", logging.INFO, __file__, 1, "job %s: succeeded", ("j1",), None,
        extra={**server_logs.ids("r1", "j1", 2), **server_logs.finished(
            "job", {"ok": False, "error": {"type": "cancelled", "field": None}}, "t2v", "a prompt")})
    line = json.loads(server_logs.JsonFormatter().format(record))
    assert {key: line[key] for key in ("level", "logger", "event", "request_id", "job_id", "attempt", "kind",
                                       "outcome", "mode", "error_field")} == {
        "level": "info", "logger": "video_endpoint.test", "event": "job j1: succeeded", "request_id": "r1",
        "job_id": "j1", "attempt": 2, "kind": "job", "outcome": "cancelled", "mode": "t2v", "error_field": None}
    assert line["time"].endswith("Z") and line["replica"] and "prompt" not in line  # VIDEO_LOG_PAYLOADS unset


HOSTED = """
import logging, os, sys
logging.basicConfig(level=logging.INFO, format="HOST %(name)s: %(message)s")  # the hosting server's own format
from handler import EndpointHandler
handler = EndpointHandler(sys.argv[1])
assert handler({"inputs": {"prompt": "a secret prompt", "width": 32, "height": 32, "num_frames": 1,
                           "num_inference_steps": 2}})["ok"]
logging.getLogger("hf-serve").info("the server's own line")
"""


def test_under_another_server_only_the_handlers_lines_are_json(tiny_model_dir):
    """As hf-serve or the toolkit run it: their logging stays theirs, the handler's lines are JSON."""
    done = subprocess.run([sys.executable, "-c", HOSTED, str(tiny_model_dir)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "VIDEO_LOG_FORMAT": "json"})
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("{", "HOST "))]
    ours = [json.loads(line) for line in lines if line.startswith("{")]
    assert "HOST hf-serve: the server's own line" in lines
    assert all(line["logger"].split(".")[0] in ("video_endpoint", "pipelines", "encoders") for line in ours)
    [finished] = [line for line in ours if "outcome" in line]
    assert finished["outcome"] == "ok" and finished["frames"] == 1 and finished["request_id"]
    assert "a secret prompt" not in done.stderr
