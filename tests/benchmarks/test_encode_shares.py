"""The core-sharing benchmark runs at a toy size and prints one row per candidate, today's first,
with the split `encoders.cores.share` makes of the cores."""

from __future__ import annotations

from encoders import cores
from tests.benchmarks import run_benchmark


def test_benchmark_times_each_candidate_split_beside_todays():
    printed = run_benchmark("encode_shares.py", "--frames", "6", "--height", "32", "--width", "48", "--repeat", "1",
                            "--weights", "webm=4.8,mp4=2.8")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in printed.splitlines()
            if line.startswith("| gif")]
    assert [row[0].endswith("(today)") for row in rows] == [True, False]
    expected = cores.share(cores.available(), {"gif": 1.0, "webm": 4.8, "mp4": 2.8, "zip": 1.0})
    assert rows[1][1] == ", ".join(str(expected[name]) for name in ("gif", "webm", "mp4", "zip"))
    assert float(rows[0][3].rstrip("x")) == 1.0 and float(rows[1][2]) > 0
