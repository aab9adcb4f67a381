"""The job-store benchmark runs at a toy size: all three cases print their latencies."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.benchmarks import run_benchmark


def test_benchmark_prints_the_latency_of_each_store(tmp_path):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing (scripts/test.sh installs the Debian package)")
        pytest.skip("needs redis-server")
    printed = run_benchmark("job_store.py", "--jobs", "2", "--polls", "10")
    cases = re.findall(r"^ *(.+): submit-to-start median +[\d.]+ ms \(max [\d.]+\), poll median [\d.]+ ms$", printed,
                       re.MULTILINE)
    assert cases == ["in process", "redis, same replica", "redis, other replica"]
