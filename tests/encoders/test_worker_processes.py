"""The encoders' worker processes: what they run, how they fail, and that none outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from encoders import worker_processes

ROOT = Path(__file__).resolve().parents[2]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has ended: its parent has not reaped it yet
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := [pid for pid in pids if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _chunks(text: str) -> list[bytes]:
    return [part.encode() for part in text.split(",")]


def test_calls_return_bytes_json_or_the_workers_error():
    pool = worker_processes.WorkerPool(2)
    try:
        assert pool.submit("encoders.gif:frame_delays_cs", 6, 12).result(timeout=60) == [8, 9, 8, 8, 9, 8]
        assert pool.submit(_chunks, "a,,\u00e9").result(timeout=60) == [b"a", b"", "\u00e9".encode()]
        with pytest.raises(worker_processes.WorkerFailed, match="ZeroDivisionError"):
            pool.submit("operator:truediv", 1, 0).result(timeout=60)
        # a failed call leaves the worker serving
        assert pool.submit("operator:add", 2, 3).result(timeout=60) == 5
    finally:
        pool.shutdown()


def test_shutdown_ends_every_worker():
    pool = worker_processes.WorkerPool(2)
    pool.start()
    pids = pool.pids()
    assert len(pids) == 2
    pool.shutdown()
    assert _gone_within(pids, 10) == []
    with pytest.raises(worker_processes.WorkerDied):
        pool.submit("operator:add", 1, 1)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "exit"])
def test_workers_end_with_their_parent(how):
    """Killed, terminated or exiting without a shutdown call (uvicorn re-raises SIGTERM, which
    skips atexit hooks): the workers see their stdin close and leave."""
    code = ("import os, signal, sys, time; from encoders import worker_processes; "
            "pool = worker_processes.WorkerPool(2); pool.start(); "
            "assert pool.submit('operator:add', 1, 1).result(timeout=60) == 2; "
            "print(*pool.pids(), flush=True); "
            f"how = {how!r}; "
            "os._exit(0) if how == 'exit' else time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(_running(pid) for pid in pids)
    if how != "exit":
        parent.send_signal(getattr(signal, how))
    parent.wait(timeout=30)
    assert _gone_within(pids, 10) == []
