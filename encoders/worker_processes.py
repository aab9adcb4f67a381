"""Worker processes for encoder work that holds the GIL (the GIF's LZW), started as a module of
this project: `python -m encoders.worker_processes <parent pid>`.

Not multiprocessing: its spawn and forkserver children re-import the parent's `__main__`, so a
script that builds the handler at module level, with no `if __name__ == "__main__":` (as
Hugging Face's custom-handler docs write test scripts), loaded the model again in each worker and
printed a bootstrapping traceback. A worker started here imports this module and what its calls
name, nothing of the caller's program.

The parent talks to each worker over its stdin and stdout: a call is a length-prefixed JSON
`{"call": "module:function", "args": [...]}` (only this project's own code sends them, over a
private pipe), its answer a kind byte and a payload: 0 a list of byte strings (encoded frames),
1 a JSON value, 2 the error text. Arrays stay in shared memory (`cores.SharedArray`), named in
the arguments.

A worker ends when its stdin closes (the parent exited or was killed: the kernel closes the
pipe), and, should another process hold that pipe open, when its parent pid changes (checked
every second). It ignores SIGINT: Ctrl-C in a terminal reaches the whole process group, and the
parent decides.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

_ROOT = str(Path(__file__).resolve().parents[1])  # the folder that holds the `encoders` package
_LENGTH = struct.Struct("<Q")
_BYTES_LIST, _JSON, _ERROR = 0, 1, 2
_PARENT_CHECK_S = 1.0
_STOP_WAIT_S = 2.0


class WorkerDied(OSError):
    """The worker process ended (killed, out of memory) or could not start: the work was not done."""


class WorkerFailed(RuntimeError):
    """The call raised in the worker; the message is its error."""


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def _write_frame(stream: IO[bytes], payload: bytes, kind: int | None = None) -> None:
    head = _LENGTH.pack(len(payload)) if kind is None else bytes([kind]) + _LENGTH.pack(len(payload))
    stream.write(head + payload)


class _Worker:
    """One worker process and the parent thread that feeds it calls from the pool's queue."""

    def __init__(self, tasks: queue.SimpleQueue[tuple[Future[Any], bytes] | None]) -> None:
        self.tasks = tasks
        self.process: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=self._serve, name="encoder-worker-feeder", daemon=True)
        self._starting = threading.Lock()  # the pool's start() and this worker's thread may both start it

    def start_process(self) -> subprocess.Popen[bytes]:
        with self._starting:
            if self.process is None or self.process.poll() is not None:
                # close_fds (the default): no other worker's pipe is inherited, so each sees EOF when
                # the parent ends
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "encoders.worker_processes", str(os.getpid())], cwd=_ROOT,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            return self.process

    def _serve(self) -> None:
        while (task := self.tasks.get()) is not None:
            future, request = task
            if future.set_running_or_notify_cancel():
                self._call(future, request)

    def _call(self, future: Future[Any], request: bytes) -> None:
        try:
            process = self.start_process()
            assert process.stdin is not None and process.stdout is not None
            _write_frame(process.stdin, request)
            process.stdin.flush()
            kind = _read_exactly(process.stdout, 1)[0]
            payload = _read_exactly(process.stdout, _LENGTH.unpack(_read_exactly(process.stdout, _LENGTH.size))[0])
        except (OSError, EOFError, ValueError) as exc:
            self.stop()  # a worker that broke mid-call is not trusted with the next one
            future.set_exception(WorkerDied(f"encoder worker process ended: {exc or type(exc).__name__}"))
            return
        if kind == _ERROR:
            future.set_exception(WorkerFailed(payload.decode("utf-8", "replace")))
        elif kind == _JSON:
            future.set_result(json.loads(payload))
        else:
            future.set_result(_unpack_bytes_list(payload))

    def stop(self) -> None:
        """Close its stdin (it exits at once between calls) and kill it if it has not gone soon after."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


class WorkerPool:
    """`count` worker processes sharing one queue of calls; a worker that dies is replaced with the
    next call it takes. `submit` returns a future of the call's result."""

    def __init__(self, count: int) -> None:
        self.tasks: queue.SimpleQueue[tuple[Future[Any], bytes] | None] = queue.SimpleQueue()
        self.workers = [_Worker(self.tasks) for _ in range(max(1, count))]
        self._lock = threading.Lock()
        self._started = self._closed = False

    def start(self) -> None:
        """Start every worker process now (they import what they need while the caller goes on)."""
        with self._lock:
            if self._closed:
                raise WorkerDied("the worker pool is shut down")
            for worker in self.workers:
                if worker.thread.ident is None:
                    worker.thread.start()
                worker.start_process()
            self._started = True

    def submit(self, function: Callable[..., Any] | str, *args: Any) -> Future[Any]:
        """Call `function` (a module-level function, or "module:function") with JSON-able `args` in
        a worker; its result must be a list of byte strings or a JSON value."""
        name = function if isinstance(function, str) else f"{function.__module__}:{function.__qualname__}"
        request = json.dumps({"call": name, "args": list(args)}).encode()
        if self._closed:
            raise WorkerDied("the worker pool is shut down")
        if not self._started:
            self.start()
        future: Future[Any] = Future()
        self.tasks.put((future, request))
        return future

    def shutdown(self) -> None:
        """End every worker process and feeder thread; calls still queued fail with WorkerDied."""
        with self._lock:
            self._closed = True
            for _ in self.workers:
                self.tasks.put(None)
            for worker in self.workers:
                worker.stop()
        while True:
            try:
                task = self.tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None and task[0].set_running_or_notify_cancel():
                task[0].set_exception(WorkerDied("the worker pool is shut down"))

    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self.workers if worker.process and worker.process.poll() is None]


def _unpack_bytes_list(payload: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset < len(payload):
        (size,) = _LENGTH.unpack_from(payload, offset)
        offset += _LENGTH.size
        items.append(payload[offset:offset + size])
        offset += size
    return items


def _pack_result(result: Any) -> tuple[int, bytes]:
    if isinstance(result, list) and all(isinstance(item, bytes) for item in result):
        return _BYTES_LIST, b"".join(_LENGTH.pack(len(item)) + item for item in result)
    return _JSON, json.dumps(result).encode()


def _leave_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(_PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(0)


def _resolve(name: str) -> Callable[..., Any]:
    module, _, function = name.partition(":")
    target: Any = importlib.import_module(module)
    for part in function.split("."):
        target = getattr(target, part)
    return target


def serve(parent: int, calls: IO[bytes], answers: IO[bytes]) -> None:
    """The worker's loop: answer each call on `calls` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_leave_when_orphaned, args=(parent,), daemon=True).start()
    importlib.import_module("encoders.gif")  # numpy and Pillow now, while the parent loads its model
    while True:
        try:
            (size,) = _LENGTH.unpack(_read_exactly(calls, _LENGTH.size))
            request = json.loads(_read_exactly(calls, size))
        except EOFError:
            return
        try:
            kind, payload = _pack_result(_resolve(request["call"])(*request["args"]))
        except Exception as exc:  # the call failed: say why, and take the next one
            kind, payload = _ERROR, f"{type(exc).__name__}: {exc}".encode()
        _write_frame(answers, payload, kind)
        answers.flush()


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def shared_pool(count: int) -> WorkerPool:
    """The process's one pool (made with `count` workers on first use), ended at interpreter exit."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool(count)
            atexit.register(_pool.shutdown)
        return _pool


if __name__ == "__main__":
    # answers go to a copy of stdout; whatever a library prints goes to stderr, not into the answers
    _answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(int(sys.argv[1]), sys.stdin.buffer, _answers)
