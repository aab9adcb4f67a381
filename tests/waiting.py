"""Tests wait on conditions, not on time: `wait_until` asks again until the condition holds and
fails, naming what it waited for, past its deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = 30.0, every_s: float = 0.02) -> T:
    """`condition()`'s first true value, asked every `every_s`; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"waited {timeout_s:g} s for {what}"
        time.sleep(every_s)
    return value
