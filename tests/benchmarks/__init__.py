"""Each benchmark script runs at a toy size, as a user runs it, and what it prints holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """`benchmarks/<script>` with `args` in its own process; what it printed (it must exit 0)."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout
