"""The cores an encoder may use, and the worker processes for the work that holds the GIL.

`available()` counts what this process may really run on: its CPU affinity (taskset, cpusets)
and, inside a container, the cgroup's CPU quota (a Kubernetes `limits.cpu` of 4 on a 96-core
host is 4 cores, not 96). `os.cpu_count()` counts the host and would oversubscribe.

Pillow's GIF (LZW) encoder holds the GIL, so threads cannot share its work; a GIF is encoded by
worker processes instead (`encoders.worker_processes`: fresh interpreters running a module of
this project, never a re-import of the caller's `__main__`). They start once, with the handler
(`start_workers`) or on first use, and live as long as the process. What they work on reaches
them in a `SharedArray`, not through their pipes (pickling a 768x512x121 clip's palette indices
alone took 0.03 s here, before the copies through the pipe and the unpickling there).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import mmap
import os
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import numpy as np

from encoders import worker_processes

MAX_WORKER_PROCESSES = 16
"""The most worker processes the pool keeps (each holds numpy and Pillow: 45 MB resident, measured)."""

_CGROUP = Path("/sys/fs/cgroup")
_SHARED_FOLDERS = ("/dev/shm", tempfile.gettempdir())  # RAM where there is one, else the page cache


def cgroup_cpu_limit(root: Path = _CGROUP) -> float | None:
    """The container's CPU quota in cores (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us`), or
    None where there is none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


@functools.cache
def available() -> int:
    """Cores this process may use: its affinity, bounded by the container's CPU quota; >= 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


def share(threads: int, weights: dict[str, float]) -> dict[str, int]:
    """Threads for jobs that run at once, in proportion to their weights (their expected work),
    so that they finish about together. On few cores the lightest job still gets one and the
    others proportionally more, up to all `threads`: the OS then shares the cores out by thread,
    that is by work, and none waits idle behind the longest (4 formats on 2 cores: 1, 2, 1, 1)."""
    total = sum(weights.values())
    lightest = min((weight for weight in weights.values() if weight > 0), default=0.0)
    if total <= 0:
        return dict.fromkeys(weights, 1)
    budget = max(threads, total / lightest)
    return {name: min(threads, max(1, math.floor(budget * weight / total + 0.5))) for name, weight in weights.items()}


class CoreBudget:
    """The cores that the encoders of every answer share (the handler's VIDEO_ENCODE_THREADS).
    An answer's encoders take a `Lease` when they start: what the answers encoding before them left
    free, at least one. Two answers encoding at once so run about one thread per core between them,
    not one per core each; the first keeps its cores until it ends (it finishes first), and a thread
    count, once given to ffmpeg, cannot change anyway."""

    def __init__(self, cores: int) -> None:
        self.cores = max(1, cores)
        self.in_use = 0
        self._lock = threading.Lock()

    def lease(self) -> Lease:
        with self._lock:
            threads = max(1, self.cores - self.in_use)
            self.in_use += threads
        return Lease(self, threads)

    def _give_back(self, lease: Lease) -> None:
        with self._lock:
            if lease.held:
                lease.held = False
                self.in_use -= lease.threads


class Lease:
    """Cores taken from a `CoreBudget` until `release()` (or the end of a `with` block); releasing
    twice gives them back once."""

    def __init__(self, budget: CoreBudget, threads: int) -> None:
        self.budget, self.threads = budget, threads
        self.held = True

    def release(self) -> None:
        self.budget._give_back(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def process_pool() -> worker_processes.WorkerPool:
    """The worker processes (as many as `available()` cores, at most MAX_WORKER_PROCESSES), started
    on first use; a worker that died is replaced with its next call."""
    return worker_processes.shared_pool(min(available(), MAX_WORKER_PROCESSES))


def start_workers() -> None:
    """Start the worker processes now (they import the formats while the model loads), so that the
    first request does not wait for them; returns at once. Shared arrays that killed servers left
    behind are removed now."""
    _sweep_once()
    process_pool().start()


def is_unavailable(exc: BaseException) -> bool:
    """True when the worker processes failed, not the work: one died (killed, out of memory) or
    none could start (no processes allowed here). The caller then does the work itself."""
    return isinstance(exc, OSError)


@dataclasses.dataclass(frozen=True)
class SharedName:
    """How a worker process finds a `SharedArray` (this is what is pickled to it)."""

    path: str
    shape: tuple[int, ...]
    dtype: str


_SHARED_PREFIX = "video-endpoint-"


def is_running(pid: int) -> bool:
    """Whether process `pid` runs (as any user)."""
    try:
        os.kill(pid, 0)  # signal 0: only whether it exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        pass
    return True


def remove_stale_shared_files(folders: tuple[str, ...] = _SHARED_FOLDERS) -> list[str]:
    """Remove the shared arrays of processes that no longer run (a server killed mid-GIF leaves its
    file: /dev/shm is memory, kept until the machine restarts); the paths removed. A file's name
    carries the pid of the process that made it. A server in another pid namespace that shares
    this /dev/shm looks dead from here: losing its file, it encodes that GIF in its own process."""
    removed = []
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            pid = name.removeprefix(_SHARED_PREFIX).partition("-")[0]
            if name.startswith(_SHARED_PREFIX) and pid.isdigit() and not is_running(int(pid)):
                path = os.path.join(folder, name)
                try:
                    os.unlink(path)
                except OSError:
                    continue
                removed.append(path)
    return removed


_swept = threading.Event()


def _sweep_once() -> None:
    if not _swept.is_set():
        _swept.set()
        remove_stale_shared_files()


class SharedArray:
    """A numpy array that worker processes read where it is, without a copy through their pipes:
    a file in /dev/shm (else the temp folder), mapped here and in each worker that `attach`es it,
    removed on leaving the `with` block (the memory goes with the last mapping), or, where this
    process is killed first, by the next process that starts the workers or shares an array
    (`remove_stale_shared_files`). Its space is reserved when it is made, so that a full /dev/shm
    (64 MB in a default Docker container) is an OSError here, for the caller to do without, never
    a SIGBUS on a later write."""

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        _sweep_once()  # what killed servers left behind, once per process
        size = max(1, math.prod(shape) * np.dtype(dtype).itemsize)
        failure: OSError = OSError("no folder for a shared array")
        for folder in _SHARED_FOLDERS:
            try:
                fd, path = tempfile.mkstemp(prefix=f"{_SHARED_PREFIX}{os.getpid()}-", dir=folder)
            except OSError as exc:
                failure = exc
                continue
            try:
                os.posix_fallocate(fd, 0, size)
                mapped = mmap.mmap(fd, size)
            except OSError as exc:
                os.unlink(path)
                failure = exc
                continue
            finally:
                os.close(fd)
            self.name = SharedName(path, shape, dtype)
            self.array: np.ndarray = np.ndarray(shape, dtype, buffer=mapped)
            return
        raise failure

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        Path(self.name.path).unlink(missing_ok=True)


def attach(name: SharedName) -> np.ndarray:
    """The shared array `name`, read-only (in a worker process)."""
    with open(name.path, "rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, name.dtype, count=math.prod(name.shape)).reshape(name.shape)
