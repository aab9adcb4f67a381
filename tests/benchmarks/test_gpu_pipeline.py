"""The plain-vs-handler benchmark runs on CPU (tiny model, small sizes) and what it reports holds:
the handler's frames equal the plain diffusers recipe's at the same seed; its profile part writes a
trace that names the request's stages, and the trace analysis splits a GPU timeline as it should."""

from __future__ import annotations

import gzip
import json

import pytest

from benchmarks.request_profile import kernel_kind, phases, summarize_chrome_trace
from tests.benchmarks import run_benchmark


@pytest.mark.parametrize(("model", "step_cache"), [("tiny", True), ("tiny-wan", True), ("tiny-kandinsky5", False)])
def test_benchmark_runs_on_cpu_and_matches_the_plain_recipe(tmp_path, model, step_cache):
    out = tmp_path / "bench.json"
    printed = run_benchmark("gpu_pipeline.py", "--model", model, "--sizes", "96x64x9", "--steps", "3",
                            "--cache-thresholds", "0.1", "--profile", "--out", str(out),
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    report = json.loads(out.read_text())
    [row] = report["rows"]
    assert row["psnr_vs_plain_db"] == float("inf")  # bit-identical frames
    assert row["size"] == "96x64x9" and row["handler_request_s"] > 0 and row["plain_request_s"] > 0
    assert report["cold_start_s"] > 0
    off, cached = report["step_cache"]
    assert off["threshold"] is None and cached["threshold"] == 0.1
    if step_cache:
        assert 0 < cached["ssim"] <= 1
    else:  # diffusers' first-block cache cannot run Kandinsky 5's blocks: said, not run
        assert "has none" in cached["error"] and "ssim" not in cached
    assert "| 96x64x9 |" in printed

    profile = report["profile"]
    assert len(profile["generate_s_repeated"]) == 3
    shares = {r["output"]: r for r in profile["output_shares"]}
    assert sorted(shares) == ["gif", "mp4", "webm", "zip"]
    assert all(r["bytes"] > 0 and 0 < r["vae_encode_share"] < 1 for r in shares.values())
    one_step = profile["one_step"]
    assert one_step["request"]["num_inference_steps"] == 2
    assert [s["stage"] for s in one_step["stages"]] == ["parse", "generate", "encode", "base64"]
    trace = json.loads(gzip.decompress((tmp_path / one_step["trace"]).read_bytes()))
    names = {e.get("name") for e in trace["traceEvents"]}
    assert {"stage.generate", "stage.encode"} <= names
    again = summarize_chrome_trace(tmp_path / one_step["trace"])  # the saved trace reads back the same
    assert [s["stage"] for s in again["stages"]] == [s["stage"] for s in one_step["stages"]]
    assert [s["wall_ms"] for s in again["stages"]] == pytest.approx([s["wall_ms"] for s in one_step["stages"]],
                                                                    abs=0.01)


def test_trace_analysis_splits_generate_where_the_gpu_work_changes():
    """Kernels named as a GPU run names them (µs): text encoder matmuls, then compiled transformer
    blocks (Triton, attention, matmul), then the VAE (convolutions), with idle time between."""
    kernels = [(0, 10, "ampere_bf16_gemm_text"), (30, 40, "nvjet_sm90_tst_text"),
               (50, 150, "triton_poi_fused_gelu_view_8"), (150, 250, "cudnn_generated_fort_native_sdpa_kernel"),
               (250, 300, "nvjet_sm90_tst_256x128"), (320, 420, "sm90_xmma_fprop_implicit_gemm_bf16"),
               (420, 440, "Memcpy DtoH (Device -> Pageable)")]
    assert kernel_kind("triton_poi_fused__to_copy_convert_element_type_1") == "Triton (fused by compile)"
    assert kernel_kind("sm90_xmma_fprop_implicit_gemm_bf16") == "convolution"
    text, denoise, vae = phases(kernels, start=0, end=450)
    assert (text["phase"], text["wall_ms"], text["gpu_busy_ms"], text["kernels"]) == (
        "text encoding, set-up", 0.05, 0.02, 2)
    assert (denoise["wall_ms"], denoise["gpu_busy_ms"]) == (0.27, 0.25)
    assert denoise["kernel_ms_by_kind"] == {"Triton (fused by compile)": 0.1, "attention": 0.1, "matmul": 0.05}
    assert (vae["wall_ms"], vae["gpu_busy_ms"], vae["kernels"]) == (0.13, 0.12, 2)
    assert phases([(0, 10, "ampere_bf16_gemm_text")], 0, 20) == []  # no transformer kernel: no split
