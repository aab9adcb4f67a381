#!/usr/bin/env bash
# The one command for a fresh GPU machine (the device tool): the GPU tests, then the plain-vs-handler
# benchmark on LTX-Video 2B and on Wan 2.1 1.3B, each under its own timeout, every log and JSON
# report written to $OUT as it goes (a run stopped at its limit still returns what it measured).
#
# Here first: `bash scripts/gpu_wheels.sh` (the wheels the GPU image lacks, into .whl/). Then one
# device call with carry [".whl"] and timeout_s 600:  bash scripts/gpu_bench.sh
#
# Budget (15 minutes of device time per session, machine start included; 10 minutes per call):
#   machine start ~1-2 min | wheels + GPU tests <= 1 min | LTX-2B <= 3 min | Wan-1.3B <= 5.5 min
#   (9.4 min at most in the call, under its 10-minute limit). Measured on an H200 (2026-11-28): the
#   GPU tests took 31 s and LTX-2B about 2 min with its step cache; Wan-1.3B needed ~100 s for start-up
#   and 512x512x32 and ~150 s more for 832x480x81 (a 200 s limit cut it there), so Wan skips the
#   step cache, which LTX measures.
# Each model is built in-process with 4 of its text encoder's 24 layers (writing a full T5-XXL
# takes minutes; the reports say so), loaded once by the handler (compile + warm-up) and once by
# the plain recipe, at two sizes, then the step cache at the first size.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-bench}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheels did not install: run scripts/gpu_wheels.sh here first and carry .whl" >&2; exit 1; }
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1  # nothing is reachable there
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
timeout 45 python3 -m pytest -q -p no:cacheprovider -m gpu tests/pipelines/test_speed.py 2>&1 | tee "$OUT/pytest-gpu.log"
timeout 180 python3 benchmarks/gpu_pipeline.py --model ltx-2b --text-encoder-layers 4 \
  --sizes 512x512x32,768x512x121 --out "$OUT/ltx.json" 2>&1 | tee "$OUT/ltx.log"
timeout 330 python3 benchmarks/gpu_pipeline.py --model wan-1.3b --text-encoder-layers 4 \
  --sizes 512x512x32,832x480x81 --cache-thresholds '' --out "$OUT/wan.json" 2>&1 | tee "$OUT/wan.log"
