from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from encoders import cores

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("files", "limit"), [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "250000 100000\n"}, 2.5),
    ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_the_containers_cpu_quota_is_read_from_cgroup_v2_or_v1(tmp_path, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cores.cgroup_cpu_limit(tmp_path) == limit


def test_available_counts_the_cores_this_process_may_run_on():
    """Pinned to one core (taskset, a cpuset), the encoders get one, whatever the host has."""
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from encoders import cores; " \
           "print(cores.available())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize(("threads", "weights", "expected"), [
    (16, {"gif": 1.0, "webm": 2.5, "mp4": 1.1, "zip": 1.0}, {"gif": 3, "webm": 7, "mp4": 3, "zip": 3}),
    (2, {"gif": 1.0, "webm": 2.5, "mp4": 1.1, "zip": 1.0}, {"gif": 1, "webm": 2, "mp4": 1, "zip": 1}),
    (1, {"gif": 1.0, "webm": 2.5, "mp4": 1.1, "zip": 1.0}, {"gif": 1, "webm": 1, "mp4": 1, "zip": 1}),
    (4, {"gif": 1.0, "webm": 2.5, "mp4": 1.1, "zip": 1.0}, {"gif": 1, "webm": 3, "mp4": 1, "zip": 1}),
    (8, {"gif": 1.0}, {"gif": 8}),
    (4, {"wav": 0.0}, {"wav": 1}),
    (4, {"wav": 0.0, "webm": 2.5}, {"wav": 1, "webm": 4}),
])
def test_concurrent_formats_share_the_cores_by_their_work(threads, weights, expected):
    assert cores.share(threads, weights) == expected
