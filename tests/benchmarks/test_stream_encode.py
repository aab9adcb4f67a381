"""The streaming benchmark runs at a toy size: the hook streamed every frame (the script checks it)
and each row of outputs is printed with its times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_streams_every_frame_and_prints_each_row():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stream_encode.py"), "--frames", "5",
                          "--height", "32", "--width", "48", "--repeat", "1", "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                              for line in run.stdout.splitlines() if line.startswith("| "))}
    assert set(rows) == {"outputs", "mp4", "webm", "zip", "mp4 + webm + zip"}
    for name in ("mp4", "webm", "zip", "mp4 + webm + zip"):
        encode_s, after_s, streamed_s = (float(cell) for cell in rows[name][:3])
        assert min(encode_s, after_s, streamed_s) > 0 and rows[name][3].endswith("x"), name
