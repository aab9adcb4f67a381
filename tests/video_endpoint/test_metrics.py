"""video_endpoint/metrics.py: `GET /metrics` of the real local server (a subprocess on the tiny
random-weight model) after a mix of requests, read with prometheus-client's own parser; a real
Prometheus (the Debian package) scraping it; the JSON log lines of the same requests."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, jpeg_base64, serving
from video_endpoint import metrics

TOKEN = "metrics-token-0123456789"
ENV = {"VIDEO_API_TOKEN": TOKEN, "VIDEO_MAX_STEPS": "2000", "VIDEO_LOG_FORMAT": "json"}
SMALL = {"width": 32, "height": 32, "num_frames": 9, "num_inference_steps": 2, "fps": 8}
LONG = {"prompt": "long", "width": 32, "height": 32, "num_frames": 1, "num_inference_steps": 2000}
SECRET_PROMPT = "a secret birthday surprise"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def auth(**headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", **headers}


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("metrics") / "server.log"
    with serving(tiny_model_dir, log, ENV) as (url, _):
        yield url, log


def parsed(text: str) -> Samples:
    """Our samples (name, sorted labels) -> value, read by prometheus-client's parser."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) if family.name.startswith(metrics.PREFIX)
            for sample in family.samples}


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    answer = httpx.get(f"{url}/metrics", headers=auth() if headers is None else headers, timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain"), answer.text
    return parsed(answer.text)


def moved(before: Samples, after: Samples) -> Samples:
    """What changed, without the buckets (checked against the counts) and the creation times."""
    changed = {key: after[key] - before.get(key, 0.0) for key in after
               if after[key] != before.get(key, 0.0) and not key[0].endswith("_created")}
    for (name, labels), count in list(changed.items()):
        if name.endswith("_count"):  # a histogram's +Inf bucket moved with its count, exactly
            bucket = (name.removesuffix("_count") + "_bucket", tuple(sorted((*labels, ("le", "+Inf")))))
            assert changed.pop(bucket) == count
    return {key: value for key, value in changed.items() if not key[0].endswith("_bucket")}


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (f"{metrics.PREFIX}_{name}", tuple(sorted(labels.items())))


def job_answer(url: str, job_id: str, until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    ended = until or (lambda answer: answer["job"]["status"] in ("succeeded", "failed", "cancelled"))
    deadline = time.monotonic() + 120
    while not ended(answer := httpx.get(f"{url}/jobs/{job_id}", headers=auth(), timeout=10).json()):
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)
    return answer


def decoded_gif(answer: dict[str, Any]) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer["outputs"]["gif_base64"])))


def test_every_metric_moves_by_exactly_what_was_sent(server):
    url, _ = server
    before = scrape(url)
    text = httpx.post(url, headers=auth(), timeout=60, json={"inputs": {
        "prompt": "x", **SMALL, "outputs": ["gif", "mp4"]}}).json()
    assert decoded_gif(text).n_frames == 9
    image = httpx.post(url, headers=auth(), timeout=60, json={"inputs": {
        "prompt": "x", **SMALL, "image": jpeg_base64(32, 32), "outputs": ["mp4"]}}).json()
    assert image["diagnostics"]["mode"] == "i2v"
    for inputs in ({"prompt": "x", "width": 33}, {"prompt": "x", "made_up_field_123": 1}):
        assert httpx.post(url, headers=auth(), json={"inputs": inputs}).status_code == 400
    refused_job = httpx.post(f"{url}/jobs", headers=auth(), json={"inputs": {"prompt": "x", "num_frames": "many"}})
    assert refused_job.json()["error"]["field"] == "num_frames"
    refused_video = httpx.post(f"{url}/v1/videos", headers=auth(), json={"prompt": "x", "size": "77"})
    assert refused_video.status_code == 400 and refused_video.json()["error"]["param"] == "size"
    job = httpx.post(f"{url}/jobs", headers=auth(), json={"inputs": {"prompt": "x", **SMALL, "outputs": ["webm"]}})
    job_done = job_answer(url, job.json()["job"]["id"])
    assert job_done["job"]["status"] == "succeeded"
    long = httpx.post(f"{url}/jobs", headers=auth(), json={"inputs": LONG}).json()["job"]["id"]
    job_answer(url, long, until=lambda answer: answer["job"]["progress"]["step"] >= 1)
    httpx.delete(f"{url}/jobs/{long}", headers=auth())
    assert job_answer(url, long)["job"]["status"] == "cancelled"
    after = scrape(url)

    answered_ok = [text["diagnostics"], image["diagnostics"], job_done["diagnostics"]]
    changed = moved(before, after)
    # sums measured by the server alone: there, and at least what the answers' diagnostics measured
    sync_seconds = changed.pop(key("request_seconds_sum", kind="sync"))
    assert sync_seconds >= sum(answer["diagnostics"]["timing_ms"]["total"] for answer in (text, image)) / 1000
    assert changed.pop(key("request_seconds_sum", kind="job")) >= job_done["diagnostics"]["timing_ms"]["total"] / 1000
    assert changed.pop(key("stage_seconds_sum", stage="queue_wait")) > 0
    assert changed == {
        key("requests_total", kind="sync", outcome="ok", mode="t2v"): 1,
        key("requests_total", kind="sync", outcome="ok", mode="i2v"): 1,
        key("requests_total", kind="sync", outcome="invalid_request", mode="none"): 2,
        key("requests_total", kind="job", outcome="invalid_request", mode="none"): 2,
        key("requests_total", kind="job", outcome="ok", mode="t2v"): 1,
        key("requests_total", kind="job", outcome="cancelled", mode="t2v"): 1,
        key("refusals_total", field="width"): 1,
        key("refusals_total", field="other"): 1,  # a field the client made up is not a label of its own
        key("refusals_total", field="num_frames"): 1,
        key("refusals_total", field="size"): 1,
        key("request_seconds_count", kind="sync"): 2,
        key("request_seconds_count", kind="job"): 1,
        key("stage_seconds_count", stage="queue_wait"): 3,  # of the answers ok, as every latency
        key("stage_seconds_count", stage="input_decode"): 1,  # the image
        key("stage_seconds_sum", stage="input_decode"): pytest.approx(
            image["diagnostics"]["timing_ms"]["image_decode"] / 1000),
        **{key(f"stage_seconds_{part}", stage=stage): value for stage, name in (
            ("denoise", "generate.denoise"), ("vae_decode", "generate.vae_decode"))
           for part, value in (("count", 3), ("sum", pytest.approx(sum(d["timing_ms"][name] for d in answered_ok)
                                                                    / 1000)))},
        **{key(f"encode_seconds_{part}", format=name): value for name, answers in (
            ("gif", [text]), ("mp4", [text, image]), ("webm", [job_done]))
           for part, value in (("count", len(answers)), ("sum", pytest.approx(
               sum(a["diagnostics"]["timing_ms"][f"encode.{name}"] for a in answers) / 1000)))},
        key("denoise_step_seconds_count"): 3,
        key("denoise_step_seconds_sum"): pytest.approx(sum(d["timing_ms"]["generate.denoise"] / 1000 / 2
                                                           for d in answered_ok)),
        key("job_attempts_total"): 2,
        key("jobs", status="finished"): 2,
    }
    assert after[key("queue_waiting", kind="sync")] == after[key("queue_waiting", kind="job")] == 0
    assert after[key("running", kind="sync")] == after[key("running", kind="job")] == 0
    assert after[key("model_info", model="tiny-ltx", family="ltx-video", class_name="LTXPipeline", device="cpu",
                     dtype="float32")] == 1
    assert not any(name.endswith("gpu_memory_bytes") for name, _ in after)  # no CUDA here


def test_the_metrics_need_the_token_unless_public(server, tiny_model_dir, tmp_path):
    url, _ = server
    assert httpx.get(f"{url}/metrics").status_code == 401
    env = {**ENV, "VIDEO_METRICS_PUBLIC": "1", "VIDEO_LOG_PAYLOADS": "1"}
    with serving(tiny_model_dir, tmp_path / "public.log", env) as (public, _):
        assert scrape(public, headers={})[key("queue_waiting", kind="sync")] == 0
        assert httpx.get(f"{public}/health").status_code == 401  # the rest still needs it
        answer = httpx.post(public, headers=auth(**{"X-Request-Id": "payload-1"}), timeout=60,
                            json={"inputs": {"prompt": SECRET_PROMPT, **SMALL}}).json()
        assert answer["ok"]
    finished = [line for line in log_lines(tmp_path / "public.log") if line.get("request_id") == "payload-1"
                and "outcome" in line]
    assert [line["prompt"] for line in finished] == [SECRET_PROMPT]  # VIDEO_LOG_PAYLOADS=1 logs it


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_json_log_lines_parse_and_carry_the_ids(server):
    url, log = server
    answer = httpx.post(url, headers=auth(**{"X-Request-Id": "log-trace-1"}), timeout=60,
                        json={"inputs": {"prompt": SECRET_PROMPT, **SMALL}}).json()
    assert decoded_gif(answer).n_frames == 9
    job_id = httpx.post(f"{url}/jobs", headers=auth(**{"X-Request-Id": "log-trace-2"}),
                        json={"inputs": {"prompt": SECRET_PROMPT, **SMALL}}).json()["job"]["id"]
    assert job_answer(url, job_id)["job"]["status"] == "succeeded"
    httpx.post(url, headers=auth(**{"X-Request-Id": "log-trace-3"}), json={"inputs": {"prompt": "x", "width": 33}})
    lines = log_lines(log)  # every line is one JSON object (uvicorn's and the libraries' too)
    assert all({"time", "level", "logger", "event", "replica"} <= set(line) for line in lines)
    assert SECRET_PROMPT not in log.read_text()
    [done] = [line for line in lines if line.get("request_id") == "log-trace-1" and "outcome" in line]
    assert done["kind"] == "sync" and done["outcome"] == "ok" and done["mode"] == "t2v"
    assert (done["family"], done["width"], done["height"], done["frames"], done["steps"]) == (
        "ltx-video", 32, 32, 9, 2)
    assert done["timing_ms"] == answer["diagnostics"]["timing_ms"]
    job_lines = [line for line in lines if line.get("job_id") == job_id]
    assert len(job_lines) >= 4 and all(line["request_id"] == "log-trace-2" for line in job_lines)  # start, steps, end
    assert job_lines[-1]["outcome"] == "ok" and job_lines[-1]["kind"] == "job" and job_lines[-1]["attempt"] == 1
    [refused] = [line for line in lines if line.get("request_id") == "log-trace-3"]
    assert (refused["outcome"], refused["error_field"], refused["level"]) == ("invalid_request", "width", "info")


def test_the_handler_counts_without_the_server(handler):
    """Served by another server (hf-serve, the toolkit), the handler counts the same in its process."""
    before = parsed(generate_latest().decode())
    assert handler({"inputs": {"prompt": "x", **SMALL}})["ok"]
    assert not handler({"inputs": {"prompt": "x", "width": 33}})["ok"]
    assert not handler({"inputs": {"prompt": "x", "async": True, "loras": "none"}})["ok"]
    changed = moved(before, parsed(generate_latest().decode()))
    assert {name: value for name, value in changed.items() if "_seconds" not in name[0]} == {
        key("requests_total", kind="sync", outcome="ok", mode="t2v"): 1,
        key("requests_total", kind="sync", outcome="invalid_request", mode="none"): 1,
        key("requests_total", kind="job", outcome="invalid_request", mode="none"): 1,
        key("refusals_total", field="width"): 1,
        key("refusals_total", field="loras"): 1,
    }
    assert changed[key("request_seconds_count", kind="sync")] == 1


def test_field_labels_are_a_closed_set():
    assert metrics.field_label("loras[0].name") == "loras"
    assert metrics.field_label(None) == "none"
    assert metrics.field_label("x" * 5000) == metrics.field_label("'; drop") == "other"


def test_the_metric_list_in_the_docs_is_the_code():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    assert metrics.markdown_table() in docs


# -- a real Prometheus --------------------------------------------------------------------------

class Prometheus:
    """`prometheus` (the Debian package) scraping `target` every second, with the token."""

    def __init__(self, workdir: Path, target: str) -> None:
        if shutil.which("prometheus") is None:
            if os.environ.get("CI") == "true":  # CI installs it (scripts/test.sh): missing there is a failure
                pytest.fail("prometheus is missing (scripts/test.sh installs the Debian package)")
            pytest.skip("needs prometheus (Debian package prometheus; scripts/test.sh installs it as root)")
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "video", "static_configs": [{"targets": [target]}],
                                "authorization": {"credentials": TOKEN}}]}))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = workdir / "prometheus.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}"], stdout=log, stderr=subprocess.STDOUT)

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def wait_for(self, promql: str, holds: Callable[[list[dict[str, Any]]], bool], within_s: float = 30
                 ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within_s
        while True:
            with contextlib.suppress(httpx.TransportError, json.JSONDecodeError):  # starting: not answering yet
                if holds(result := self.query(promql)):
                    return result
            assert time.monotonic() < deadline, (promql, self.log.read_text()[-2000:])
            time.sleep(0.25)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextlib.contextmanager
def prometheus(workdir: Path, target: str) -> Iterator[Prometheus]:
    scraper = Prometheus(workdir, target)
    try:
        yield scraper
    finally:
        scraper.stop()


def value_of(result: list[dict[str, Any]]) -> float:
    return float(result[0]["value"][1]) if result else math.nan


def test_a_real_prometheus_reads_queue_depth_and_p95_latency(tiny_model_dir, tmp_path):
    with serving(tiny_model_dir, tmp_path / "server.log", ENV) as (url, _), \
            prometheus(tmp_path, url.removeprefix("http://")) as scraper:
        scraper.wait_for('up{job="video"}', lambda result: value_of(result) == 1)
        long = httpx.post(f"{url}/jobs", headers=auth(), json={"inputs": LONG}).json()["job"]["id"]
        job_answer(url, long, until=lambda answer: answer["job"]["status"] == "running")
        queued = [httpx.post(f"{url}/jobs", headers=auth(), json={"inputs": {"prompt": "q", **SMALL, "seed": n}}
                             ).json()["job"]["id"] for n in range(2)]
        # the queue depth an autoscaler reads
        scraper.wait_for('video_endpoint_queue_waiting{kind="job"}', lambda result: value_of(result) == 2)
        httpx.delete(f"{url}/jobs/{long}", headers=auth())
        assert all(job_answer(url, job_id)["job"]["status"] == "succeeded" for job_id in queued)
        scraper.wait_for('video_endpoint_queue_waiting{kind="job"}', lambda result: value_of(result) == 0)
        # a series appears with its first count, and rate() sees increases only after that: the second
        # round of requests moves series the first one made
        for inputs in ({"prompt": "x", **SMALL}, {"prompt": "x", "width": 33}):
            httpx.post(url, headers=auth(), timeout=60, json={"inputs": inputs})
        scraper.wait_for("sum(video_endpoint_requests_total)", lambda result: value_of(result) == 5)
        seconds = []
        for _ in range(4):
            started = time.perf_counter()
            assert httpx.post(url, headers=auth(), timeout=60, json={"inputs": {"prompt": "x", **SMALL}}).json()["ok"]
            seconds.append(time.perf_counter() - started)
        assert httpx.post(url, headers=auth(), json={"inputs": {"prompt": "x", "width": 33}}).status_code == 400
        p95 = value_of(scraper.wait_for(
            'histogram_quantile(0.95, sum by (le) (rate(video_endpoint_request_seconds_bucket{kind="sync"}[1m])))',
            lambda result: not math.isnan(value_of(result))))
        # interpolated within the bucket holding the slowest answer: at most that bucket's upper bound
        bound = min(le for le in metrics.SECONDS_BUCKETS if le >= max(seconds))
        assert 0 < p95 <= bound, (p95, seconds)
        stages = scraper.wait_for(
            "histogram_quantile(0.95, sum by (le, stage) (rate(video_endpoint_stage_seconds_bucket[1m])))",
            lambda result: {"denoise", "vae_decode", "queue_wait"} <= {series["metric"]["stage"] for series in result})
        p95s = {series["metric"]["stage"]: float(series["value"][1]) for series in stages}
        assert all(0 < p95s[stage] < 60 for stage in ("denoise", "vae_decode", "queue_wait")), p95s
        errors = scraper.wait_for('sum(rate(video_endpoint_requests_total{outcome!="ok"}[1m])) '
                                  '/ sum(rate(video_endpoint_requests_total[1m]))', lambda result: value_of(result) > 0)
        assert 0 < value_of(errors) < 1  # the refused request among the ok ones
