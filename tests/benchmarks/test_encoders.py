"""The encoder benchmark runs at a toy size, and what it prints holds: the current encoders give
the baseline's GIF bytes on a natural clip, and every row decodes."""

from __future__ import annotations

import re
import subprocess

import pytest

from benchmarks.encoders import DEFAULT_BASELINE
from tests.benchmarks import ROOT, run_benchmark


def test_benchmark_compares_with_the_baseline_on_one_and_two_cores():
    if subprocess.run(["git", "cat-file", "-e", f"{DEFAULT_BASELINE}^{{commit}}"], cwd=ROOT,
                      capture_output=True).returncode != 0:
        pytest.skip(f"this clone lacks the baseline commit {DEFAULT_BASELINE} (shallow)")
    printed = run_benchmark("encoders.py", "--frames", "6", "--height", "32", "--width", "48", "--repeat", "1",
                            "--cores", "1,2")
    rows = {}
    for section in re.split(r"\n(?=natural clip|noise clip)", printed)[1:]:
        label = section.split()[0]
        for line in section.splitlines():
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if cells[0].endswith(" alone"):
                rows.setdefault((label, cells[0]), []).append(cells)
    assert {name for _, name in rows} == {"gif alone", "webm good alone", "mp4 good alone", "zip alone"}
    for (label, name), found in rows.items():
        for cells in found:
            old_bytes, new_bytes = (int(cells[i].replace(",", "")) for i in (4, 5))
            if label == "natural" and name == "gif alone":
                assert old_bytes == new_bytes, (label, name)
            assert float(cells[7]) >= float(cells[6]) - 0.05 or cells[7] == "inf", (label, name)
