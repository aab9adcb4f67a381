"""Frames that arrive while the VAE decodes (`encoders.base.ArrivingFrames`) and the formats that
encode them as they come (`STREAMS`): the same files as from the finished clip."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from encoders import _ffmpeg, mp4, webm, zip
from encoders.base import ArrivingFrames, Clip, FramesWithdrawn
from tests.media import decode_video, zip_members

FRAMES = np.ascontiguousarray(np.random.default_rng(5).integers(0, 256, (21, 48, 64, 3), dtype=np.uint8))
RUNS = (1, 4, 4, 4, 4, 4)  # how a Wan VAE decodes 21 frames: one, then four per latent frame


def arriving_in_runs(frames: np.ndarray, pause_s: float = 0.02, end: str = "complete") -> ArrivingFrames:
    """Frames written in RUNS from another thread, as the decode hook writes them; then `end`."""
    arriving = ArrivingFrames(np.zeros_like(frames))

    def produce() -> None:
        count = 0
        for run in RUNS:
            time.sleep(pause_s)
            arriving.frames[count:count + run] = frames[count:count + run]
            count += run
            arriving.arrived(count)
        time.sleep(pause_s)
        arriving.complete() if end == "complete" else arriving.withdraw()

    threading.Thread(target=produce, daemon=True).start()
    return arriving


def ffmpeg_children() -> list[int]:
    """This process's child processes that are ffmpeg and still running."""
    pids = []
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        pids += [int(pid) for pid in children.read_text().split()]
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if "ffmpeg" in stat.split()[1] and stat.split()[2] != "Z":
            alive.append(pid)
    return alive


def test_batches_come_as_the_frames_arrive_and_end_once_they_are_complete():
    arriving = ArrivingFrames(np.zeros_like(FRAMES))
    seen: list[tuple[int, int]] = []
    ended = threading.Event()

    def read() -> None:
        for batch in arriving.batches():
            seen.append((len(batch), int(batch[0, 0, 0, 0])))
        ended.set()

    reader = threading.Thread(target=read)
    reader.start()
    count = 0
    for run in RUNS:
        arriving.frames[count:count + run] = count + 1
        count += run
        arriving.arrived(count)
        time.sleep(0.05)  # the reader takes each run before the next
    assert not ended.wait(0.2)  # every frame is in, but not yet final
    arriving.complete()
    reader.join(5)
    assert seen == [(run, sum(RUNS[:i]) + 1) for i, run in enumerate(RUNS)]
    assert list(map(len, arriving.batches())) == [len(FRAMES)]  # a reader that starts late gets them at once


def test_withdrawn_frames_stop_the_reader():
    arriving = ArrivingFrames(np.zeros_like(FRAMES))
    arriving.arrived(5)
    batches = arriving.batches()
    assert len(next(batches)) == 5
    arriving.withdraw()
    with pytest.raises(FramesWithdrawn):
        next(batches)
    arriving.complete()  # too late: they stay withdrawn
    with pytest.raises(FramesWithdrawn):
        next(arriving.batches())


@pytest.mark.parametrize("module", [mp4, webm], ids=["mp4", "webm"])
def test_ffmpeg_formats_write_the_finished_clips_file_from_arriving_frames(module):
    finished = module.encode(Clip(FRAMES, fps=12, threads=2), module.Options())
    streamed = module.encode(Clip(FRAMES, fps=12, threads=2, arriving=arriving_in_runs(FRAMES)), module.Options())
    np.testing.assert_array_equal(decode_video(streamed).frames, decode_video(finished).frames)
    if module is mp4:  # the WebM muxer writes a random segment id and the time: two files of one clip differ there
        assert streamed == finished
    assert len(streamed) == len(finished)


def test_zip_writes_the_finished_clips_entries_from_arriving_frames():
    finished = zip.encode(Clip(FRAMES, fps=12, threads=2), zip.Options())
    streamed = zip.encode(Clip(FRAMES, fps=12, threads=2, arriving=arriving_in_runs(FRAMES)), zip.Options())
    assert zip_members(streamed) == zip_members(finished)


@pytest.mark.parametrize("module", [mp4, zip], ids=["mp4", "zip"])
def test_withdrawn_frames_stop_the_encoder_and_leave_no_ffmpeg(module):
    clip = Clip(FRAMES, fps=12, threads=2, arriving=arriving_in_runs(FRAMES, end="withdraw"))
    with pytest.raises(FramesWithdrawn):
        module.encode(clip, module.Options())
    assert ffmpeg_children() == []


def test_the_ffmpeg_deadline_counts_from_the_last_frame(monkeypatch, tmp_path):
    """A stream may wait on a long decode: ENCODE_TIMEOUT_S is ffmpeg's time once every frame is
    in, not the decode's. This ffmpeg never reads: it is killed 1 s after the frames are complete."""
    import imageio_ffmpeg

    hanging = tmp_path / "ffmpeg"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(hanging))
    monkeypatch.setattr(_ffmpeg, "ENCODE_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(_ffmpeg.FfmpegError, match=r"killed after 1\.0 s"):
        mp4.encode(Clip(FRAMES, fps=12, arriving=arriving_in_runs(FRAMES, pause_s=0.3)), mp4.Options())
    assert 2.1 + 1.0 <= time.monotonic() - started < 30  # 7 pauses of 0.3 s, then the second
    assert ffmpeg_children() == []
