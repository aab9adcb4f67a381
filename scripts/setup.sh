#!/usr/bin/env bash
# Create .venv with everything the handler, the demo and the tests need.
# torch is installed first and pinned: an unpinned torch would pull a multi-GB CUDA build here;
# requirements.txt keeps a range that an Endpoint's preinstalled torch satisfies.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install --quiet -r requirements-dev.txt
# the project itself, editable: the `video-endpoint` command (its dependencies are the files above)
.venv/bin/python -m pip install --quiet --no-deps --editable .
