#!/usr/bin/env bash
# Set up, then lint and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# System tools some tests use, installed where we may (root with apt, e.g. CI); elsewhere those
# tests skip with a message: curl + jq (the API card's pipelines), chromium (browser playback).
missing=""
for tool in curl jq chromium; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy  # files and strictness: pyproject.toml [tool.mypy]
.venv/bin/python -m pytest -q "$@"
