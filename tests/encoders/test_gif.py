from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from encoders import cores, gif, worker_processes
from encoders.base import Clip
from tests.media import decode_gif, psnr, synthetic_clip


@pytest.mark.parametrize(("num_frames", "fps"), [(12, 12), (32, 12), (48, 24), (30, 30), (10, 7), (5, 50), (3, 1)])
def test_delays_add_up_to_the_clip_length(num_frames, fps):
    delays = gif.frame_delays_cs(num_frames, fps)
    assert len(delays) == num_frames
    assert sum(delays) == round(num_frames * 100 / fps)
    assert max(delays) - min(delays) <= 1  # spread evenly, never bunched


def test_twelve_fps_pattern():
    assert gif.frame_delays_cs(6, 12) == [8, 9, 8, 8, 9, 8]


def test_decodes_to_the_frames_with_exact_count_size_timing_and_loop():
    frames = synthetic_clip(24, 64, 96)
    data = gif.encode(Clip(frames, fps=12), gif.Options())
    decoded = decode_gif(data)
    assert decoded.frames.shape == frames.shape
    assert decoded.size == (96, 64)
    assert sum(decoded.durations_ms) == pytest.approx(2000, abs=10)
    assert decoded.loop == 0
    assert psnr(decoded.frames, frames) > 38  # 256 colours for the whole clip, nearest match
    # each decoded frame is closest to its own source frame: order and partial updates are right
    for index in (0, 7, 23):
        errors = [np.abs(decoded.frames[index].astype(int) - f).mean() for f in frames]
        assert int(np.argmin(errors)) == index


def test_identical_frames_are_kept_as_frames():
    still = np.repeat(synthetic_clip(1, 32, 32), 6, axis=0)
    decoded = decode_gif(gif.encode(Clip(still, fps=6), gif.Options()))
    assert len(decoded.frames) == 6
    assert sum(decoded.durations_ms) == pytest.approx(1000, abs=10)
    np.testing.assert_array_equal(decoded.frames[0], decoded.frames[5])


def test_single_frame():
    decoded = decode_gif(gif.encode(Clip(synthetic_clip(1, 32, 64), fps=12), gif.Options()))
    assert decoded.frames.shape == (1, 32, 64, 3)


@pytest.mark.parametrize("fps", [12, 24, 30, 7])
def test_playback_length_is_exact_when_decoded(fps):
    decoded = decode_gif(gif.encode(Clip(synthetic_clip(fps * 2, 32, 32), fps=fps), gif.Options()))
    assert len(decoded.frames) == fps * 2
    assert sum(decoded.durations_ms) == 2000
    assert min(decoded.durations_ms) >= 20  # browsers slow down shorter delays


def test_palette_is_deterministic_and_full():
    frames = synthetic_clip(8, 64, 96)
    first, again = gif.clip_palette(frames), gif.clip_palette(frames)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (256, 3) and first.dtype == np.uint8


def test_noise_beyond_the_exact_cells_is_matched_coarser_and_stays_close():
    """Noise uses more colour cells than are matched exactly: the later ones at 6 bits, still
    within 5% of the exact nearest colour's error on every frame."""
    noise = np.random.default_rng(0).integers(0, 256, (8, 256, 256, 3), dtype=np.uint8)
    decoded = decode_gif(gif.encode(Clip(noise, fps=10), gif.Options())).frames
    palette = gif.clip_palette(noise)
    assert decoded.shape == noise.shape
    for frame, shown in zip(noise, decoded, strict=True):
        exact = palette[gif._nearest(frame.reshape(-1, 3), palette)]
        error = np.abs(shown.reshape(-1, 3).astype(int) - frame.reshape(-1, 3)).sum(1).mean()
        assert error < np.abs(exact.astype(int) - frame.reshape(-1, 3)).sum(1).mean() * 1.05


def test_every_pixel_is_its_colour_cells_nearest_palette_entry():
    frames = synthetic_clip(12, 64, 96)
    decoded = decode_gif(gif.encode(Clip(frames, fps=12), gif.Options())).frames
    palette = gif.clip_palette(frames)
    cells = gif._colour_keys(frames).ravel()
    expected = palette[gif._nearest(gif._cell_centres(cells, gif._KEY_BITS), palette)]
    np.testing.assert_array_equal(decoded.reshape(-1, 3), expected)


def test_the_same_bytes_on_any_number_of_cores():
    """One core: all in this process; more: LZW in worker processes, and with 8 the colour
    matching on threads too. The file must not depend on it."""
    clip = synthetic_clip(40, 48, 64)
    files = {threads: gif.encode(Clip(clip, fps=12, threads=threads), gif.Options()) for threads in (1, 2, 3, 8)}
    assert len(set(files.values())) == 1
    assert len(decode_gif(files[1]).frames) == 40


def test_a_dead_worker_is_replaced():
    pool = cores.process_pool()
    before = set(pool.pids())
    with pytest.raises(worker_processes.WorkerDied):
        pool.submit(os._exit, 1).result(timeout=60)
    clip = Clip(synthetic_clip(20, 32, 48), fps=12, threads=2)
    assert gif.encode(clip, gif.Options()) == gif.encode(dataclasses.replace(clip, threads=1), gif.Options())
    assert set(pool.pids()) - before  # a new process took the dead one's place


def test_without_room_to_share_the_frames_the_gif_is_encoded_here(monkeypatch):
    def no_room(shape, dtype):
        raise OSError(28, "No space left on device")

    clip = Clip(synthetic_clip(20, 32, 48), fps=12, threads=2)
    expected = gif.encode(dataclasses.replace(clip, threads=1), gif.Options())
    monkeypatch.setattr(cores, "SharedArray", no_room)
    assert gif.encode(clip, gif.Options()) == expected


@pytest.mark.parametrize(("num_frames", "workers"), [(121, 2), (121, 16), (7, 3), (1, 2), (300, 1)])
def test_batches_cover_the_clip_in_order_starting_and_ending_small(num_frames, workers):
    """The workers start on one frame, and the last batches are shares of what is left, so that
    none finishes long after the others."""
    bounds = gif.batch_bounds(num_frames, workers)
    assert [start for start, _ in bounds] == [0, *(stop for _, stop in bounds[:-1])]
    assert bounds[-1][1] == num_frames
    sizes = [stop - start for start, stop in bounds]
    assert sizes[0] == 1 and min(sizes) >= 1
    assert max(sizes) <= max(2, num_frames // (4 * workers))
    assert sizes[-1] <= max(1, num_frames // (8 * workers))


def test_the_nearest_palette_entry_is_found_exactly():
    """Against float64 distances, for colour cell centres (halves: exact in float32)."""
    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, (256, 3)).astype(np.uint8)
    cells = rng.integers(0, 1 << (3 * gif._KEY_BITS), 5000).astype(np.uint32)
    centres = gif._cell_centres(cells, gif._KEY_BITS)
    distances = ((centres[:, None, :].astype(np.float64) - palette[None].astype(np.float64)) ** 2).sum(-1)
    best = distances.min(1)
    found = gif._nearest(centres, palette)
    np.testing.assert_array_equal(distances[np.arange(len(cells)), found], best)


def test_without_worker_processes_the_gif_is_encoded_here(monkeypatch):
    def no_processes():
        raise OSError("no processes may start here")

    clip = Clip(synthetic_clip(20, 32, 48), fps=12, threads=2)
    expected = gif.encode(dataclasses.replace(clip, threads=1), gif.Options())
    monkeypatch.setattr(cores, "process_pool", no_processes)
    assert gif.encode(clip, gif.Options()) == expected
