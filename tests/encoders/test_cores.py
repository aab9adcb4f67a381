from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def _read_shared(name: dict) -> list[bytes]:
    return [cores.attach(cores.SharedName(**name)).tobytes()]


def test_a_shared_array_is_read_by_the_workers_and_removed_after():
    with cores.SharedArray((3, 4, 5), "uint8") as shared:
        shared.array[:] = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
        assert cores.process_pool().submit(_read_shared, dataclasses.asdict(shared.name)).result(timeout=60) == [
            bytes(range(60))]
    assert not Path(shared.name.path).exists()


def test_no_room_for_a_shared_array_is_an_oserror(monkeypatch, tmp_path):
    """A full /dev/shm is refused when the array is made (the caller then does without), not a
    SIGBUS when it is written."""
    def no_room(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cores, "_SHARED_FOLDERS", (str(tmp_path),))
    monkeypatch.setattr(os, "posix_fallocate", no_room)
    with pytest.raises(OSError):
        cores.SharedArray((1000,), "uint8")
    assert list(tmp_path.iterdir()) == []


def test_answers_encoding_at_once_share_the_budget_and_give_it_back():
    """The first answer takes every core; one that starts while it runs gets what is left, at least
    one; the cores go back when a lease ends, once however often it is released."""
    budget = cores.CoreBudget(4)
    first = budget.lease()
    second = budget.lease()
    assert (first.threads, second.threads, budget.in_use) == (4, 1, 5)
    second.release()
    second.release()
    assert budget.in_use == 4
    with first:
        pass
    assert budget.in_use == 0
    with budget.lease() as again:
        assert again.threads == 4


def test_a_killed_servers_shared_array_is_removed_by_the_next_one(tmp_path):
    """A process killed inside the `with` block leaves its file in /dev/shm; the next process to
    share an array removes it, and never one of a process that still runs."""
    code = ("import os, signal; from encoders import cores; shared = cores.SharedArray((8, 8), 'uint8'); "
            "print(shared.name.path, flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    killed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -9
    left = Path(killed.stdout.strip())
    assert left.exists()
    assert str(left) in cores.remove_stale_shared_files() and not left.exists()
    with cores.SharedArray((2, 2), "uint8") as mine:
        assert cores.remove_stale_shared_files() == [] and Path(mine.name.path).exists()  # this process runs
