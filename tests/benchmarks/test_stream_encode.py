"""The streaming benchmark runs at a toy size: the hook streamed every frame (the script checks it)
and each row of outputs is printed with its times."""

from __future__ import annotations

from tests.benchmarks import run_benchmark


def test_benchmark_streams_every_frame_and_prints_each_row():
    printed = run_benchmark("stream_encode.py", "--frames", "5", "--height", "32", "--width", "48", "--repeat", "1",
                            "--device", "cpu")
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                              for line in printed.splitlines() if line.startswith("| "))}
    assert set(rows) == {"outputs", "mp4", "webm", "zip", "mp4 + webm + zip"}
    for name in ("mp4", "webm", "zip", "mp4 + webm + zip"):
        encode_s, after_s, streamed_s = (float(cell) for cell in rows[name][:3])
        assert min(encode_s, after_s, streamed_s) > 0 and rows[name][3].endswith("x"), name
