"""The plain-vs-handler benchmark runs on CPU (tiny model, small sizes) and what it reports holds:
the handler's frames equal the plain diffusers recipe's at the same seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model", ["tiny", "tiny-wan"])
def test_benchmark_runs_on_cpu_and_matches_the_plain_recipe(tmp_path, model):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_pipeline.py"), "--model", model, "--sizes", "96x64x9",
         "--steps", "3", "--cache-thresholds", "0.1", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    [row] = report["rows"]
    assert row["psnr_vs_plain_db"] == float("inf")  # bit-identical frames
    assert row["size"] == "96x64x9" and row["handler_request_s"] > 0 and row["plain_request_s"] > 0
    assert report["cold_start_s"] > 0
    off, cached = report["step_cache"]
    assert off["threshold"] is None and cached["threshold"] == 0.1 and 0 < cached["ssim"] <= 1
    assert "| 96x64x9 |" in run.stdout
