"""`pipelines/model.py` on its own: the loaded model the application generates with."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from pipelines import registry
from pipelines.base import GenerationJob, SpeedSettings
from pipelines.model import DecodedChunks, frames_to_uint8


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return registry.load_model(str(tiny_model_dir), "test", torch.device("cpu"), torch.float32, SpeedSettings())


def job(**overrides) -> GenerationJob:
    fields = dict(prompt="a red balloon", negative_prompt="", image=None, height=32, width=64,
                  num_frames=9, fps=12, num_inference_steps=2, guidance_scale=7.5, seed=4)
    return GenerationJob(**{**fields, **overrides})


def test_frames_to_uint8_rounds_clamps_keeps_and_lays_out_as_images():
    video = torch.rand(1, 5, 3, 4, 6) * 1.2 - 0.1  # a little outside [0, 1] on both sides
    expected = np.clip(np.round(video[0, :3].numpy() * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    frames = frames_to_uint8(video.clone(), keep=3)
    assert frames.shape == (3, 4, 6, 3) and frames.dtype == np.uint8 and frames.flags.c_contiguous
    np.testing.assert_array_equal(frames, expected)


def test_describe_names_the_directory_not_its_path(model, tiny_model_dir):
    described = model.describe()
    assert described["id"] == tiny_model_dir.name and str(tiny_model_dir.parent) not in str(described)
    assert (described["family"], described["class_name"], described["modes"]) == (
        "ltx-video", "LTXPipeline", ["t2v", "i2v"])
    assert described["conditioning"] == ["extend", "keyframes", "last_image", "video"]
    assert "random-weight" in described["note"]


def test_the_returned_frames_are_the_first_of_those_generated(model):
    whole = model.generate(job(num_frames=17))
    kept = model.generate(job(num_frames=17, keep_frames=10))
    assert (whole.frames.shape[0], kept.frames.shape[0]) == (17, 10)
    assert kept.generated_frames == whole.generated_frames == 17
    np.testing.assert_array_equal(kept.frames, whole.frames[:10])
    assert kept.audio is None and not kept.vae_tiling and kept.peak_gpu_memory_mb is None  # CPU: not measured


def test_generations_run_one_at_a_time_and_each_gets_its_own_frames(model, monkeypatch):
    alone = {seed: model.generate(job(seed=seed)).frames for seed in range(4)}
    inside, most = 0, 0
    generate = model.family.generate

    def counting(pipelines, one_job, on_step):
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        time.sleep(0.02)  # give another thread the chance to enter, were the lock missing
        try:
            return generate(pipelines, one_job, on_step)
        finally:
            inside -= 1

    monkeypatch.setattr(model, "family", type("Counted", (), {"generate": staticmethod(counting),
                                                              "FAMILY": model.family.FAMILY}))
    together: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda s=seed: together.__setitem__(s, model.generate(job(seed=s)).frames))
               for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    for seed in range(4):
        np.testing.assert_array_equal(together[seed], alone[seed])


def test_step_reports_and_the_time_split(model):
    steps: list[tuple[int, int]] = []
    generated = model.generate(job(num_inference_steps=3), on_step=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert set(generated.timing_ms) == {"denoise", "vae_decode"} and min(generated.timing_ms.values()) > 0


class RecordingSink:
    """A `FrameSink` that notes each count it is told."""

    def __init__(self, job: GenerationJob) -> None:
        self.frames = np.zeros((job.returned_frames, job.height, job.width, 3), np.uint8)
        self.counts: list[int] = []
        self.opened = 0

    def open(self) -> np.ndarray:
        self.opened += 1
        return self.frames

    def arrived(self, count: int) -> None:
        self.counts.append(count)


@pytest.mark.parametrize(("model_id", "generated", "counts"), [
    ("tiny-wan", 13, [1, 5, 9, 10]), ("tiny-cogvideox", 13, [8, 10]), ("tiny", 17, [10])])
def test_a_sink_gets_the_frames_as_the_vae_decodes_them(tiny_models, model_id, generated, counts):
    """Wan decodes one latent frame (four frames, one for the first) per decoder call, CogVideoX two
    latent frames, LTX the clip in one call: the sink gets each run as it comes, the first 10 of
    those generated, and they are the frames generated without a sink."""
    loaded = registry.load_model(str(tiny_models(model_id)), "test", torch.device("cpu"), torch.float32,
                                 SpeedSettings())
    wanted = job(height=64, width=96, num_frames=generated, keep_frames=10)
    plain = loaded.generate(wanted)
    sink = RecordingSink(wanted)
    streamed = loaded.generate(wanted, sink=sink)
    assert streamed.streamed and not plain.streamed
    assert sink.counts == counts and sink.opened == 1 and streamed.frames is sink.frames
    np.testing.assert_array_equal(streamed.frames, plain.frames)


def test_decoded_chunks_stream_only_one_pass_over_the_frames_in_order(model):
    """What another decoder call pattern looks like to the hook: overlapping temporal tiles, the
    wrong size, patchified channels. None of them is taken for the clip."""
    pipe, wanted = model.pipelines.t2v, job(num_frames=9)
    video = torch.rand(1, 3, 9, 32, 64) * 2 - 1  # what a decoder makes: (B, C, F, H, W) in [-1, 1]
    finished = pipe.video_processor.postprocess_video(video, output_type="pt")

    def fed(*chunks: torch.Tensor) -> tuple[DecodedChunks, RecordingSink]:
        sink = RecordingSink(wanted)
        hook = DecodedChunks(pipe, wanted, sink)
        for chunk in chunks:
            hook(pipe.vae.decoder, (), chunk)
        return hook, sink

    hook, sink = fed(video[:, :, :1], video[:, :, 1:5], (video[:, :, 5:],))  # CogVideoX's decoder returns a tuple
    assert hook.complete(finished.clone()) and sink.counts == [1, 5, 9]
    np.testing.assert_array_equal(sink.frames, frames_to_uint8(finished.clone(), 9))
    for chunks in [(video[:, :, :5], video[:, :, 3:]),  # overlapping tiles: 11 frames made
                   (video[:, :, :5],),  # the rest never came
                   (video[..., :16],),  # a spatial tile
                   (video.repeat(1, 4, 1, 1, 1),)]:  # 12 channels: patchified
        assert not fed(*chunks)[0].complete(finished.clone())
    assert fed(video[..., :16])[1].opened == 0  # a first call of the wrong size: the sink never opens
    wrong, _ = fed(video * 0)  # right counts, other frames: the ends compared find it
    assert not wrong.complete(finished.clone())
