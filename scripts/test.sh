#!/usr/bin/env bash
# Set up both library generations, lint, then run the test suite (what CI runs): the whole suite on
# the toolkit generation (.venv), then the tests whose outcome can depend on library versions
# (families, formats, LoRA, handler, jobs, server, CLI) on the current generation (.venv-current).
# Arguments go to both pytest runs (e.g. -k lora); the deployment emulations (tests/deploy) build
# their own environments and run once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
GENERATION=current bash scripts/setup.sh
# System tools some tests use, installed where we may (root with apt, e.g. CI); elsewhere those
# tests skip with a message (under CI=true a missing redis-server or prometheus fails them): curl + jq (the API
# card's pipelines), chromium (browser playback), redis-server (the shared job store of replicas),
# prometheus (scrapes the local server's /metrics).
missing=""
for tool in curl jq chromium redis-server prometheus; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
.venv/bin/python -m ruff check .
# types are checked against the toolkit generation's libraries (transformers 5 ships other stubs for the
# tiny builders' configs and tokenizers; its runtime is what the second pytest run checks)
.venv/bin/python -m mypy  # files and strictness: pyproject.toml [tool.mypy]

VERSION_SENSITIVE=(tests/pipelines tests/encoders tests/video_endpoint)
# the replicas on a real Redis and the real Prometheus run once: they test processes, Redis and
# Prometheus, not library versions
ONCE=(--ignore=tests/video_endpoint/test_replicas.py --ignore=tests/video_endpoint/test_redis_jobs.py
      --deselect=tests/video_endpoint/test_metrics.py::test_a_real_prometheus_reads_queue_depth_and_p95_latency)
echo "== toolkit generation (.venv: requirements.txt)"
.venv/bin/python -m pytest -q "$@"
echo "== current generation (.venv-current: requirements-current.txt)"
if [ $# -gt 0 ]; then
  .venv-current/bin/python -m pytest -q --ignore=tests/deploy "${ONCE[@]}" "$@"
else
  .venv-current/bin/python -m pytest -q "${ONCE[@]}" "${VERSION_SENSITIVE[@]}"
fi
