#!/usr/bin/env bash
# Set up, then run one text-to-video request on the tiny random-weight model: writes output.gif.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/video-endpoint generate --prompt "a cyberpunk street in rain, neon lights" \
  --frames 24 --seed 42 --overwrite -o output.gif "$@"  # its own file: replaced on a rerun
