"""A client for a deployed endpoint (or `video-endpoint serve`): submit a job, poll it, write the
files; `VideoClient` is the same from Python. It speaks only the `{"inputs": ...}` body, so it works wherever the
handler runs: a hosted Inference Endpoint, the stock toolkit, the local server.

Every exchange is bounded: one http(s) URL, read once (no redirect is followed: the token goes to
that host only), a deadline for the whole answer, a cap on its size.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_endpoint.http_url import BadUrl, Deadline, HttpTarget, parse_http_url

FINISHED = ("succeeded", "failed", "cancelled")  # as video_endpoint.jobs says; not imported: it would load torch
MAX_ANSWER_BYTES = 1024 * 2**20  # an answer carries base64 video: generous, but never unbounded
TIMEOUT_S = 60.0  # for one whole exchange: connecting, sending, the answer's last byte
MAX_WAIT_S = 3600.0  # for a whole job, submit to its end: a job that never ends is cancelled, not polled forever


def printable(text: str, limit: int = 200) -> str:
    """`text` from a server, safe for a terminal: control characters (escape sequences, bells,
    carriage returns) written as escapes, at most `limit` characters."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text[:limit])


class EndpointError(Exception):
    """The endpoint could not be reached or did not answer what this client can read."""


def parse_url(url: str) -> HttpTarget:
    """The endpoint's address; raises EndpointError for anything but a plain http(s) URL."""
    try:
        return parse_http_url(url)
    except BadUrl as exc:  # the URL is not echoed: it may hold a password
        raise EndpointError(f"--url {exc} (such as https://xyz.endpoints.huggingface.cloud; the token goes in "
                            "$HF_TOKEN)") from None


def call(url: str, token: str | None, body: dict[str, Any], timeout: float = TIMEOUT_S,
         max_bytes: int = MAX_ANSWER_BYTES) -> dict[str, Any]:
    """POST `body` as JSON; the endpoint's JSON answer, whatever its HTTP status."""
    endpoint = parse_url(url)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = endpoint.connection(timeout)
    deadline = Deadline(connection, timeout)
    try:
        connection.request("POST", endpoint.target, body=json.dumps(body).encode(), headers=headers)
        response = connection.getresponse()
        if 300 <= response.status < 400:
            location = (response.getheader("Location") or "")[:200]
            raise EndpointError(f"{url} answered HTTP {response.status}, a redirect to {location!r}: not followed "
                                "(the token goes only to --url's host); use that URL")
        raw = _read_bounded(response, max_bytes, url)
        if deadline.passed or response.length:  # cut by the deadline, or fewer bytes than announced
            raise http.client.IncompleteRead(bytes(raw[:200]))
    except (OSError, http.client.HTTPException) as exc:
        if deadline.passed:
            raise EndpointError(f"{url} did not answer completely within {timeout:g} s") from None
        raise EndpointError(f"cannot reach {url}: {printable(str(exc))}") from None
    finally:
        deadline.cancel()
        connection.close()
    if not raw:
        raise EndpointError(f"{url} answered HTTP {response.status} without a body")
    start = bytes(raw[:200])
    try:  # the bytes are let go once they are text: the answer is held about twice at most, not four times
        text = raw.decode("utf-8")
        del raw
        answer = json.loads(text)
    except (ValueError, RecursionError):  # not UTF-8 or not JSON; nested deeper than Python parses
        raise EndpointError(f"{url} did not answer JSON: {start!r}") from None
    if not isinstance(answer, dict):
        raise EndpointError(f"{url} answered {printable(str(answer))}")
    return answer


def _read_bounded(response: http.client.HTTPResponse, max_bytes: int, url: str) -> bytearray:
    declared = response.getheader("Content-Length") or ""
    if declared.isdigit() and int(declared) > max_bytes:
        raise EndpointError(f"{url} answered {int(declared):,} bytes, over this client's {max_bytes:,}")
    if declared.isdigit():  # read into its final place: a growing buffer is copied as it grows
        body = bytearray(int(declared))
        view, filled = memoryview(body), 0
        while filled < len(body) and (count := response.readinto(view[filled:])):
            filled += count
        view.release()
        del body[filled:]
        return body
    body = bytearray()
    while chunk := response.read1(1 << 16):
        body += chunk
        if len(body) > max_bytes:
            raise EndpointError(f"{url} answered over this client's {max_bytes:,} bytes")
    return body


def _job(answer: dict[str, Any], url: str) -> dict[str, Any]:
    """The answer's `job`, checked: what the progress bar and the loop below read."""
    job = answer.get("job")
    progress = job.get("progress") if isinstance(job, dict) else None
    if (not isinstance(job, dict) or not isinstance(job.get("id"), str) or not isinstance(job.get("status"), str)
            or not isinstance(progress, dict) or not isinstance(progress.get("step"), int)
            or not isinstance(progress.get("total"), int | None)):
        raise EndpointError(f"{url} answered a job this client cannot read: {json.dumps(answer)[:200]}")
    return {**job, "status": printable(job["status"], 40)}


Progress = Callable[[str, int, int | None], None]
"""on_progress(status, step, total): after each poll of a job."""


def run_job(url: str, token: str | None, request: dict[str, Any], poll_s: float = 1.0,
            on_progress: Progress | None = None, max_wait_s: float = MAX_WAIT_S) -> dict[str, Any]:
    """Submit `request` as a job and poll it to its end, reporting each poll to `on_progress`;
    Ctrl-C cancels the job, and so does its not ending within `max_wait_s` (EndpointError).
    Returns the final answer (`ok` false when it could not be submitted)."""
    gives_up = time.monotonic() + max_wait_s
    submitted = call(url, token, {**request, "inputs": {**request["inputs"], "async": True}})
    if submitted.get("ok") is not True:
        return submitted
    if "job" not in submitted:
        raise EndpointError(f"{url} ran the request instead of queueing it: does it serve this handler?")
    job_id = _job(submitted, url)["id"]
    try:
        while True:
            answer = call(url, token, {"inputs": {"job_id": job_id}})
            if "job" not in answer and not _store_away(answer):
                return answer
            if "job" not in answer:  # the job store is away for a moment (Redis restarting): the job is not lost
                job = {"id": job_id, "status": "unavailable", "progress": {"step": 0, "total": None}}
            else:
                job = _job(answer, url)
            if on_progress is not None:
                on_progress(job["status"], job["progress"]["step"], job["progress"]["total"])
            if job["status"] in FINISHED:
                return answer
            if time.monotonic() + poll_s > gives_up:
                _cancel(url, token, job_id)
                raise EndpointError(f"job {job_id} did not end within {max_wait_s:g} s (still {job['status']}); "
                                    "cancelled it")
            time.sleep(poll_s)
    except KeyboardInterrupt:
        _cancel(url, token, job_id)
        raise


def _store_away(answer: dict[str, Any]) -> bool:
    error = answer.get("error")
    return answer.get("ok") is False and isinstance(error, dict) and error.get("type") == "unavailable"


def _cancel(url: str, token: str | None, job_id: str) -> None:
    try:
        call(url, token, {"inputs": {"job_id": job_id, "cancel": True}}, timeout=10)
        print(f"\ncancelled job {job_id}", file=sys.stderr)
    except EndpointError as exc:
        print(f"\ncould not cancel job {job_id}: {exc}", file=sys.stderr)


def progress_bar() -> tuple[Progress, Callable[[], None]]:
    """A tqdm bar on stderr as an `on_progress`, and the function that closes it (the CLI's)."""
    from tqdm import tqdm

    bar = tqdm(desc="queued", unit="step", file=sys.stderr)

    def show(status: str, step: int, total: int | None) -> None:
        bar.set_description(status)
        if total:
            bar.total = total
            bar.update(step - bar.n)

    return show, bar.close


class RequestFailed(EndpointError):
    """The endpoint answered `ok: false`: `error` is its error object (`type`, `field`, `message`)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        error = answer.get("error")
        self.error: dict[str, Any] = error if isinstance(error, dict) else {"type": "unknown", "field": None,
                                                                            "message": str(answer)[:200]}
        self.answer = answer
        super().__init__(printable(f"{self.error.get('type')} ({self.error.get('field')}): "
                                   f"{self.error.get('message')}", 1000))


@dataclass(frozen=True)
class Video:
    """A generation's answer, decoded."""

    files: dict[str, bytes]
    """each requested format's file by name (`"mp4"`: its bytes), uploaded ones left out"""
    uploads: dict[str, dict[str, Any]]
    """where each uploaded format went (`url`, `bytes`, `sha256`)"""
    diagnostics: dict[str, Any]


class VideoClient:
    """A deployed endpoint (or `video-endpoint serve`) from Python, on the standard library alone:

        client = VideoClient("https://xyz.endpoints.huggingface.cloud", token)
        video = client.generate("waves at dusk", num_frames=33, outputs=["mp4"])
        Path("waves.mp4").write_bytes(video.files["mp4"])

    `generate` runs a job (polled every `poll_s`, reported to `on_progress`) unless `job=False`;
    an `ok: false` answer raises RequestFailed with the endpoint's error."""

    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT_S, poll_s: float = 1.0,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        parse_url(url)  # refused now, not at the first call
        self.url, self.token, self.timeout, self.poll_s, self.max_wait_s = url, token, timeout, poll_s, max_wait_s

    def generate(self, prompt: str, *, job: bool = True, on_progress: Progress | None = None,
                 **fields: Any) -> Video:
        request = {"inputs": {"prompt": prompt, **fields}}
        answer = (run_job(self.url, self.token, request, self.poll_s, on_progress, self.max_wait_s) if job
                  else call(self.url, self.token, request, self.timeout))
        if answer.get("ok") is not True:
            raise RequestFailed(answer)
        found = answer.get("outputs")
        outputs: dict[str, Any] = found if isinstance(found, dict) else {}
        uploads = {key.removesuffix("_upload"): value for key, value in outputs.items() if key.endswith("_upload")}
        names = [key.removesuffix("_base64") for key in outputs if key.endswith("_base64")]
        diagnostics = answer.get("diagnostics")
        return Video(dict(zip(names, decode_outputs(answer, names), strict=True)), uploads,
                     diagnostics if isinstance(diagnostics, dict) else {})


def decode_outputs(answer: dict[str, Any], formats: list[str]) -> list[bytes]:
    """Each format's file from a succeeded answer; EndpointError names what is missing or broken."""
    outputs = answer.get("outputs")
    files = []
    for name in formats:
        encoded = outputs.get(f"{name}_base64") if isinstance(outputs, dict) else None
        if not isinstance(encoded, str):
            raise EndpointError(f"the answer has no {name}_base64 output")
        try:
            files.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise EndpointError(f"the answer's {name}_base64 is not base64") from None
    return files


def write_outputs(answer: dict[str, Any], paths: list[Path], formats: list[str], overwrite: bool = False) -> None:
    for path, data in zip(paths, decode_outputs(answer, formats), strict=True):
        write_file(path, data, overwrite)


def write_file(path: Path, data: bytes, overwrite: bool) -> None:
    """Write `path`; without `overwrite`, an existing file is never replaced (not even one that
    appeared while generating)."""
    with path.open("wb" if overwrite else "xb") as file:
        file.write(data)
    print(f"wrote {path}", file=sys.stderr)
