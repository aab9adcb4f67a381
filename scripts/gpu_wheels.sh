#!/usr/bin/env bash
# Download (here, where PyPI is reachable) the wheels the GPU machine's image lacks into .whl/,
# for `benchmarks/gpu_pipeline.py` on a lent GPU (its Python is 3.12; torch, pillow and numpy are
# already there; the pinned Hugging Face stack is brought along so that it runs the versions we ship).
# ffmpeg for the WebM/MP4 rows of `--profile`: imageio-ffmpeg 0.7.0 (29.5 MB wheel), the newest that
# fits beside the rest in the 64 MiB a device call carries (0.8's wheel is 68 MB); requirements.txt
# allows it (>=0.5), the Endpoint installs the newest.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
# the Hugging Face stack exactly as requirements.txt pins it (development, CI and the Endpoint run it)
pinned=$(grep -E '^[A-Za-z0-9_.-]+==' requirements.txt | tr '\n' ' ')
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl \
  $pinned pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection \
  "typing_extensions>=4.14" ftfy wcwidth imageio-ffmpeg==0.7.0 zlib-ng
ls .whl
# Then, on the device: one call with carry [".whl"] running `bash scripts/gpu_bench.sh`.
