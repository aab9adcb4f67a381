#!/usr/bin/env bash
# Set up, then lint and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The server tests run the API card's curl | jq | base64 pipelines (skipped without curl and jq).
if { ! command -v curl || ! command -v jq; } >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq curl jq >/dev/null
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m pytest -q "$@"
