"""A client for a deployed endpoint (or `video-endpoint serve`): submit a job, poll it with a
progress bar, write the files. It speaks only the `{"inputs": ...}` body, so it works wherever the
handler runs: a hosted Inference Endpoint, the stock toolkit, the local server.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

FINISHED = ("succeeded", "failed", "cancelled")  # as video_endpoint.jobs says; not imported: it would load torch


class EndpointError(Exception):
    """The endpoint could not be reached or did not answer with JSON."""


def call(url: str, token: str | None, body: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """POST `body` as JSON; the endpoint's JSON answer, whatever its HTTP status."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
    except urllib.error.HTTPError as exc:  # 4xx/5xx still carry the JSON answer
        text = exc.read()
        if not text:
            raise EndpointError(f"{url} answered HTTP {exc.code} without a body") from None
    except (urllib.error.URLError, OSError) as exc:
        raise EndpointError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    try:
        answer = json.loads(text)
    except ValueError:
        raise EndpointError(f"{url} did not answer JSON: {text[:200]!r}") from None
    if not isinstance(answer, dict):
        raise EndpointError(f"{url} answered {str(answer)[:200]}")
    return answer


def run_job(url: str, token: str | None, request: dict[str, Any], poll_s: float = 1.0) -> dict[str, Any]:
    """Submit `request` as a job and poll it to its end, with a progress bar on stderr; Ctrl-C
    cancels the job. Returns the final answer (`ok` false when it could not be submitted)."""
    from tqdm import tqdm

    submitted = call(url, token, {**request, "inputs": {**request["inputs"], "async": True}})
    if not submitted.get("ok"):
        return submitted
    if "job" not in submitted:
        raise EndpointError(f"{url} ran the request instead of queueing it: does it serve this handler?")
    job_id = submitted["job"]["id"]
    progress = tqdm(desc="queued", unit="step", file=sys.stderr)
    try:
        while True:
            answer = call(url, token, {"inputs": {"job_id": job_id}})
            job = answer.get("job")
            if job is None:
                return answer
            progress.set_description(job["status"])
            if job["progress"]["total"]:
                progress.total = job["progress"]["total"]
                progress.update(job["progress"]["step"] - progress.n)
            if job["status"] in FINISHED:
                return answer
            time.sleep(poll_s)
    except KeyboardInterrupt:
        call(url, token, {"inputs": {"job_id": job_id, "cancel": True}})
        print(f"\ncancelled job {job_id}", file=sys.stderr)
        raise
    finally:
        progress.close()


def write_outputs(answer: dict[str, Any], paths: list[Path], formats: list[str]) -> None:
    for path, name in zip(paths, formats, strict=True):
        path.write_bytes(base64.b64decode(answer["outputs"][f"{name}_base64"]))
        print(f"wrote {path}", file=sys.stderr)
