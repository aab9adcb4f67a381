"""The loaded model the application talks to: a family with its pipelines, one copy of the
weights, generation serialized, LoRA selection, VAE tiling and the out-of-memory retry, and what
a generation returns (`Generated`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from encoders.base import Audio
from pipelines.base import GenerationJob, LoadedPipelines, ModelFamily, SpeedSettings, StepCallback, VideoWithAudio
from pipelines.errors import OutOfMemory
from pipelines.lora import LoraAdapters
from pipelines.memory import VaeTiling, free_gpu_bytes, set_tiling

logger = logging.getLogger(__name__)


@dataclass
class Generated:
    frames: np.ndarray
    """`(num_frames, H, W, 3)` uint8: exactly the frames the request asked for."""
    generated_frames: int
    timing_ms: dict[str, float] = field(default_factory=dict)
    peak_gpu_memory_mb: float | None = None
    """the request's peak GPU memory (CUDA only)"""
    vae_decode_gpu_memory_mb: float | None = None
    """what decoding needed above what was allocated before it (CUDA only)"""
    vae_tiling: bool = False
    notes: list[str] = field(default_factory=list)
    audio: Audio | None = None
    """the soundtrack as generated (its own length; each output fits it to its duration)"""
    enhanced_prompt: str | None = None
    """the prompt generated with, where the model's enhancer rewrote the request's"""
    streamed: bool = False
    """`frames` are those handed to the request's `FrameSink` as they were decoded, all of them"""


def frames_to_uint8(video: torch.Tensor, keep: int, first: int = 0) -> np.ndarray:
    """`(1, F, C, H, W)` floats in [0, 1] -> `keep` frames from `first` on as `(keep, H, W, 3)` uint8.

    Converted where the frames are (the GPU), in place, and moved once, 4x smaller than float32.
    """
    frames = video[0, first:first + keep].mul_(255).round_().clamp_(0, 255).to(torch.uint8)  # in place: we own it
    return frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()


class FrameSink(Protocol):
    """Where a request's frames go while the VAE decodes them (the encode stage's `Streaming`, or an
    `encoders.base.ArrivingFrames`). `open()` is called once, when the decoder has made the first of
    them, and returns the `(keep, H, W, 3)` uint8 array to fill in order; `arrived(n)` is told once
    its first n frames are in. A sink opened only then holds nothing while its request waits for
    the model or denoises."""

    def open(self) -> np.ndarray: ...

    def arrived(self, count: int) -> None: ...


class DecodedChunks:
    """A forward hook on a VAE's decoder that hands each temporal chunk it decodes to a `FrameSink`,
    converted as the pipeline converts the whole video (`postprocess_video`, then `frames_to_uint8`).
    Only VAEs that call their decoder once per chunk of frames, in order, stream so (Wan and
    CogVideoX decode causally, a few frames at a time); any other call pattern (one call for the
    whole clip, overlapping tiles, a patchified output) is seen by the counts or the sizes, and then
    the frames are not `complete` and the caller converts the finished video instead."""

    def __init__(self, pipe: Any, job: GenerationJob, sink: FrameSink) -> None:
        self.pipe, self.sink = pipe, sink
        self.first, self.keep, self.size = job.first_frame, job.returned_frames, (job.height, job.width)
        self.produced = self.delivered = 0
        self.failed = False
        self.frames: np.ndarray | None = None
        """the sink's array, once it is opened"""

    def __call__(self, module: Any, args: Any, output: Any) -> None:
        if self.failed:
            return
        try:
            self._take(output[0] if isinstance(output, tuple) else output)
        except Exception:  # never the generation's failure: the finished video is converted instead
            logger.debug("streaming the decoded frames stopped", exc_info=True)
            self.failed = True

    def _take(self, chunk: Any) -> None:
        if not isinstance(chunk, torch.Tensor) or chunk.ndim != 5 or tuple(chunk.shape[:2]) != (1, 3) \
                or tuple(chunk.shape[-2:]) != self.size:
            self.failed = True
            return
        start, stop = self.produced, self.produced + int(chunk.shape[2])
        self.produced = stop
        low, high = max(start, self.first + self.delivered), min(stop, self.first + self.keep)
        if high <= low:
            return
        if low != self.first + self.delivered:  # a gap: not one pass over the frames in order
            self.failed = True
            return
        with torch.no_grad():
            video = self.pipe.video_processor.postprocess_video(chunk[:, :, low - start:high - start], output_type="pt")
            converted = frames_to_uint8(video, high - low)
        if self.frames is None:
            self.frames = self.sink.open()
        self.frames[low - self.first:high - self.first] = converted
        self.delivered = high - self.first
        self.sink.arrived(self.delivered)

    def complete(self, video: torch.Tensor) -> bool:
        """Whether the sink holds every returned frame of the finished `video`: the decoder made
        exactly its frames, and its first and last returned frames are the sink's."""
        if self.failed or self.frames is None or self.delivered != self.keep or self.produced != video.shape[1]:
            return False
        ends = [self.first, self.first + self.keep - 1]
        return bool(np.array_equal(frames_to_uint8(video[:, ends].clone(), 2), self.frames[[0, -1]]))

    @classmethod
    @contextmanager
    def hooked(cls, pipe: Any, job: GenerationJob, sink: FrameSink | None) -> Iterator[DecodedChunks | None]:
        """The hook on `pipe`'s VAE decoder while in the block (None: no sink, or no decoder to hook)."""
        decoder = getattr(getattr(pipe, "vae", None), "decoder", None)
        if sink is None or not isinstance(decoder, torch.nn.Module):
            yield None
            return
        hook = cls(pipe, job, sink)
        handle = decoder.register_forward_hook(hook)
        try:
            yield hook
        finally:
            handle.remove()


class PromptRedaction(logging.Filter):
    """Prompts never reach the logs. diffusers' pipelines log the part of a prompt that their text
    encoder cut off ("The following part of your input was truncated because ... tokens: <text>"):
    the text is replaced by its length. Installed on each loaded pipeline's module logger."""

    MARK = "part of your input was truncated"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.MARK in message:
            head, _, cut = message.partition("tokens: ")
            record.msg, record.args = f"{head}tokens: ({len(cut)} characters of the prompt, not logged)", ()
        return True


def redact_prompts_in_logs(pipelines: LoadedPipelines) -> None:
    for pipe in pipelines.all:
        pipeline_logger = logging.getLogger(type(pipe).__module__)
        if not any(isinstance(f, PromptRedaction) for f in pipeline_logger.filters):
            pipeline_logger.addFilter(PromptRedaction())


class VideoModel:
    """A loaded family with its pipelines; what `EndpointHandler` generates with."""

    def __init__(self, family: ModelFamily, pipelines: LoadedPipelines, source: str,
                 device: torch.device, dtype: torch.dtype, speed: SpeedSettings, random_weights: bool = False,
                 speed_applied: list[str] | None = None, vae_tiling: VaeTiling | None = None,
                 loras: LoraAdapters | None = None) -> None:
        self.family = family
        self.loras = loras
        redact_prompts_in_logs(pipelines)
        self.vae_tiling = vae_tiling or VaeTiling()
        self.speed = speed  # in effect; `speed_applied` says what it switched on
        self.speed_applied = speed_applied or []
        self.pipelines = pipelines
        self.source = source
        # what clients see: the Hub id, or a local directory's own name, never a filesystem path
        self.name = Path(source).name if Path(source).is_dir() else source
        self.device = device
        self.dtype = dtype
        self.random_weights = random_weights
        # The pipelines hold per-call state (scheduler timesteps, interrupt flags): one call at a time.
        self._lock = threading.Lock()

    @property
    def modes(self) -> list[str]:
        return [mode for mode in ("t2v", "i2v") if getattr(self.pipelines, mode) is not None]

    def describe(self) -> dict[str, Any]:
        info = {
            "id": self.name,
            "family": self.family.FAMILY,
            "class_name": self.pipelines.class_name,
            "modes": self.modes,
            "conditioning": sorted(self.family.CONDITIONING),  # what it may serve beyond `image`
            "prompt_enhancer": self.family.prompt_enhancer(self.pipelines) is not None,
            "auto_duration": self.family.predicts_duration(self.pipelines),
            "speed": self.speed_applied,
            "loras": self.loras.describe() if self.loras is not None else [],
        }
        if self.random_weights:
            info["note"] = "tiny random-weight test model: its output is noise"
        return info

    def generate(self, job: GenerationJob, on_step: StepCallback | None = None,
                 sink: FrameSink | None = None) -> Generated:
        """Generate `job`; with a `sink`, its frames are handed to it as the VAE decodes them where
        the VAE allows (`DecodedChunks`; `Generated.streamed` says whether all were)."""
        with self._lock:
            if self.loras is not None:
                try:
                    self.loras.apply(job.loras)  # all or nothing: W0 again if it fails
                except torch.cuda.OutOfMemoryError:
                    merge_failed = True
                else:
                    merge_failed = False
                if merge_failed:  # outside the except block: the failed merge's tensors are free
                    torch.cuda.empty_cache()
                    raise OutOfMemory(f"out of GPU memory merging the LoRA adapters "
                                      f"{', '.join(name for name, _ in job.loras)}; ask for fewer adapters")
            enhanced, enhance_ms = self._enhanced_prompt(job)
            if enhanced is not None:
                job = replace(job, prompt=enhanced)
            free = free_gpu_bytes(self.device)
            tiled = self.vae_tiling.decide(job.pixel_frames, free)
            attempt = self._generate_once(job, on_step, tiled, sink)
            retry = not tiled and self.vae_tiling.mode == "auto"
            if isinstance(attempt, _OutOfMemory) and attempt.in_decode and retry:
                self.vae_tiling.did_not_fit(job.pixel_frames, free)
                attempt = self._generate_once(job, on_step, tiled=True)
                if isinstance(attempt, Generated):
                    attempt.notes.append("ran out of GPU memory decoding all frames at once: generated again "
                                         "and decoded in tiles (larger requests are tiled from now on)")
        if isinstance(attempt, Generated) and enhanced is not None:
            attempt.enhanced_prompt = enhanced
            attempt.timing_ms = {"enhance_prompt": enhance_ms, **attempt.timing_ms}
        if isinstance(attempt, _OutOfMemory):
            raise OutOfMemory(
                f"out of GPU memory {'decoding' if attempt.in_decode else 'generating'} {job.num_frames} frames "
                f"at {job.width}x{job.height}; ask for fewer frames or a smaller size")
        return attempt

    def _enhanced_prompt(self, job: GenerationJob) -> tuple[str | None, float]:
        """The enhancer's prompt (None when the job asks for none) and the milliseconds it took."""
        enhancer = self.family.prompt_enhancer(self.pipelines) if job.enhance_prompt else None
        if enhancer is None:
            return None, 0.0
        started = time.perf_counter()
        with torch.no_grad():
            prompt = enhancer(job)
        return prompt, (time.perf_counter() - started) * 1000

    def _generate_once(self, job: GenerationJob, on_step: StepCallback | None, tiled: bool,
                       sink: FrameSink | None = None) -> Generated | _OutOfMemory:
        cuda = self.device.type == "cuda"
        step_ends: list[float] = []
        denoised = False  # set after the last step
        decode_start_bytes = denoise_peak = 0

        def record_step(step: int, total: int) -> None:
            nonlocal decode_start_bytes, denoise_peak, denoised
            if step == total and cuda:
                # the host runs ahead of the GPU: wait for the last step's kernels, so that "denoise"
                # and "vae_decode" split where the GPU's work did (the decode waits for them anyway)
                torch.cuda.synchronize(self.device)
            step_ends.append(time.perf_counter())
            if step == total:  # what follows is the decode: its memory is measured on its own
                denoised = True
                if cuda:
                    denoise_peak = torch.cuda.max_memory_allocated()
                    decode_start_bytes = torch.cuda.memory_allocated()
                    torch.cuda.reset_peak_memory_stats()
            if on_step is not None:
                on_step(step, total)

        pipe = self.pipelines.for_job(job)
        set_tiling(pipe.vae, tiled)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        out_of_memory = streamed = False
        try:
            with DecodedChunks.hooked(pipe, job, None if tiled else sink) as chunks:
                output = self.family.generate(self.pipelines, job, record_step)
            video, audio = output, None
            if isinstance(output, VideoWithAudio):
                samples = output.audio.float().cpu().numpy()
                # the sound of the returned frames: from the first one on (`extend` skips the context)
                skip = round(job.first_frame / job.fps * output.sample_rate)
                video, audio = output.video, Audio(np.ascontiguousarray(samples[:, skip:]), output.sample_rate)
            assert isinstance(video, torch.Tensor)
            generated_frames = int(video.shape[1])  # the job's, or the model's own length (auto_duration)
            confirmed = chunks.frames if chunks is not None and chunks.complete(video) else None
            streamed = confirmed is not None
            frames = confirmed if confirmed is not None else \
                frames_to_uint8(video, job.returned_frames, job.first_frame)
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True
        if out_of_memory:
            # Outside the except block the failed call's tensors are unreachable: free them.
            if cuda:
                torch.cuda.empty_cache()
            return _OutOfMemory(in_decode=denoised)
        finished = time.perf_counter()
        peak = decode_mb = None
        if cuda:
            decode_peak = torch.cuda.max_memory_allocated()
            peak = max(denoise_peak, decode_peak) / 2**20
            decode_mb = (decode_peak - decode_start_bytes) / 2**20
            if not tiled:
                self.vae_tiling.measured(job.pixel_frames, decode_peak - decode_start_bytes)
        decode_started = step_ends[-1] if step_ends else finished
        timing = {
            "denoise": (decode_started - started) * 1000,  # text encoding and latent set-up included
            "vae_decode": (finished - decode_started) * 1000,  # and the uint8 conversion
        }
        return Generated(frames=frames, generated_frames=generated_frames, timing_ms=timing,
                         peak_gpu_memory_mb=peak, vae_decode_gpu_memory_mb=decode_mb, vae_tiling=tiled,
                         audio=audio, streamed=streamed)


@dataclass(frozen=True)
class _OutOfMemory:
    in_decode: bool
    """every denoising step had finished: the VAE decode ran out"""
