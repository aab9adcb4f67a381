"""The monitoring benchmark runs at a toy size: each line prints a median, the ratios hold."""

from __future__ import annotations

import re
import shutil

from tests.benchmarks import run_benchmark


def test_benchmark_prints_the_cost_of_counting_logging_and_scraping():
    printed = run_benchmark("metrics.py", "--repeat", "20")
    assert re.search(r"counting its answer \(metrics\.answered\): median +[\d.]+ us \([\d.]+% of the request\)$",
                     printed, re.MULTILINE)
    assert re.search(r"the same line as JSON: median +[\d.]+ us \(x[\d.]+\)$", printed, re.MULTILINE)
    assert re.search(r"GET /metrics, jobs in memory: median +[\d.]+ ms \(\d+ bytes\)$", printed, re.MULTILINE)
    if shutil.which("redis-server"):
        assert re.search(r"GET /metrics, jobs in Redis: median +[\d.]+ ms \(\d+ bytes, x[\d.]+\)$", printed,
                         re.MULTILINE)
