"""The OpenAI Videos API benchmark runs at a toy size: each way prints its median and ratio."""

from __future__ import annotations

import re

from tests.benchmarks import run_benchmark


def test_benchmark_prints_each_way_and_the_delete_latency():
    printed = run_benchmark("openai_videos.py", "--repeat", "1")
    ways = re.findall(r"^ *(.+): median +[\d.]+ ms \(x[\d.]+\)$", printed, re.MULTILINE)
    assert ways == ["POST / (synchronous)", "POST /jobs, polled every 50 ms", "openai SDK create_and_poll + download"]
    assert re.search(r"DELETE of a running video -> next starts: median +[\d.]+ ms \(max [\d.]+\)$", printed,
                     re.MULTILINE)
