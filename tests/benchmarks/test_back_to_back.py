"""The back-to-back benchmark runs at a toy size: both ways answer all four, and the ratio is printed."""

from __future__ import annotations

import re

from tests.benchmarks import run_benchmark


def test_benchmark_answers_four_requests_both_ways_and_prints_the_ratio():
    printed = run_benchmark("back_to_back.py", "--rounds", "1", "--frames", "9", "--size", "64", "--steps", "2")
    assert re.findall(r"^ *(serial|overlapped) round 0: [\d.]+ s$", printed, re.MULTILINE) == ["serial", "overlapped"]
    assert re.search(r"^overlapped / serial = \d+\.\d{3}$", printed, re.MULTILINE)
