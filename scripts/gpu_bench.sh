#!/usr/bin/env bash
# The one command for a fresh GPU machine (the device tool): the GPU tests and the plain-vs-handler
# benchmark (benchmarks/gpu_pipeline.py), in parts, each under its own timeout, every log, JSON
# report and trace written to $OUT as it goes (a part stopped at its limit still returns what it measured).
#
# Here first: `bash scripts/gpu_wheels.sh` (the wheels the GPU image lacks, into .whl/). Then one
# device call with carry [".whl"] and timeout_s 600:  bash scripts/gpu_bench.sh [PART ...]
#
# Parts (default: ltx wan-cache, 9 minutes at most, each with its own timeout; pick parts whose
# limits sum to what one device call may run):
#   tests      pytest -m gpu                                                          <= 45 s
#   ltx        LTX-Video 2B with its full 24-layer T5-XXL, 512x512x32 and 768x512x121,
#              then --profile at 768x512x121 (repeats, each output's share, a trace)  <= 300 s
#   first      LTX-Video 2B, 4 text-encoder layers: traces of the first and second request at
#              768x512x121 (outside the warm-up)                                       <= 200 s
#   ltx-cache  LTX-Video 2B, 4 text-encoder layers, 512x512x32 and the step cache      <= 180 s
#   wan        Wan 2.1 1.3B, 4 text-encoder layers, 512x512x32 and 832x480x81         <= 330 s
#   wan-cache  Wan 2.1 1.3B, 4 text-encoder layers, 512x512x32 and the step cache      <= 240 s
#   kandinsky5 Kandinsky 5.0 T2V Lite, 4 of Qwen2.5-VL-7B's 28 layers, 512x512x33 and
#              768x512x121 (limit sized as the wan part's)                          <= 330 s
# Measured on an H200 (2026-11-28): the GPU tests 31 s; LTX-2B (4 layers, both sizes, cache) ~140 s;
# Wan-1.3B start-up and 512x512x32 ~100 s, 832x480x81 ~150 s more.
# "4 text-encoder layers" builds the text encoder with 4 of its layers (the transformer and VAE are
# the real shapes; the reports say so): faster to write and load where the text encoder is not measured.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-bench}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheels did not install: run scripts/gpu_wheels.sh here first and carry .whl" >&2; exit 1; }
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1  # nothing is reachable there
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
bench() {  # seconds name args...
  local limit=$1 name=$2
  shift 2
  timeout "$limit" python3 benchmarks/gpu_pipeline.py "$@" --out "$OUT/$name.json" 2>&1 | tee "$OUT/$name.log"
}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(ltx wan-cache)
for part in "${parts[@]}"; do
  echo "== $part ($(date -u +%T))"
  case $part in
    tests) timeout 45 python3 -m pytest -q -p no:cacheprovider -m gpu tests/pipelines/test_speed.py 2>&1 \
             | tee "$OUT/pytest-gpu.log" ;;
    ltx) bench 300 ltx --model ltx-2b --text-encoder-layers 24 --sizes 512x512x32,768x512x121 \
           --cache-thresholds '' --profile ;;
    first) bench 200 first --model ltx-2b --text-encoder-layers 4 --sizes 512x512x32,768x512x121 --trace-first ;;
    ltx-cache) bench 180 ltx-cache --model ltx-2b --text-encoder-layers 4 --sizes 512x512x32 ;;
    wan) bench 330 wan --model wan-1.3b --text-encoder-layers 4 --sizes 512x512x32,832x480x81 \
           --cache-thresholds '' ;;
    wan-cache) bench 240 wan-cache --model wan-1.3b --text-encoder-layers 4 --sizes 512x512x32 ;;
    kandinsky5) bench 330 kandinsky5 --model kandinsky5-lite --text-encoder-layers 4 --sizes 512x512x33,768x512x121 \
           --cache-thresholds '' ;;
    *) echo "unknown part $part (tests, ltx, first, ltx-cache, wan, wan-cache, kandinsky5)" >&2; exit 2 ;;
  esac
done
