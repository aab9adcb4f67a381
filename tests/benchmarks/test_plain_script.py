"""The plain-script benchmark runs at a toy size: both scripts ran once each, and the ratio is printed."""

from __future__ import annotations

import re

from tests.benchmarks import run_benchmark


def test_benchmark_runs_each_script_once_and_prints_the_ratio():
    printed = run_benchmark("plain_script.py", "--repeat", "1", "--frames", "9")
    rounds = re.findall(r"^(plain|guarded) +round 0: +[\d.]+ s, script ran (\d+)x, exit (\d+), (\d+) traceback",
                        printed, re.MULTILINE)
    assert sorted(rounds) == [("guarded", "1", "0", "0"), ("plain", "1", "0", "0")]
    assert re.search(r"plain / guarded = \d+\.\d{3}$", printed, re.MULTILINE)
