"""What every family shares: device and dtype choice, the job a family runs, and `VideoModel`,
the loaded model the handler talks to (one copy of the weights, generation serialized)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import diffusers
import numpy as np
import torch
from packaging.version import Version
from PIL import Image

from encoders.base import Audio
from pipelines.errors import OutOfMemory, Refused
from pipelines.lora import LoraAdapters
from pipelines.memory import VaeTiling, free_gpu_bytes, set_tiling

logger = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]
"""on_step(step_done, total_steps): called after each denoising step."""


# The one API that differs between the library generations this project supports (README "Deploy"):
# diffusers 0.40 renamed from_pretrained's and from_pipe's `torch_dtype` to `dtype` (the old name warns
# and goes in 1.0); diffusers 0.39 ignores `dtype` and would load float32 weights on a GPU.
DTYPE_KEYWORD = "dtype" if Version(diffusers.__version__) >= Version("0.40") else "torch_dtype"


def dtype_argument(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The weights' dtype as this diffusers' loaders take it: `**dtype_argument(torch.bfloat16)`."""
    return {DTYPE_KEYWORD: dtype}


def pick_device_and_dtype() -> tuple[torch.device, torch.dtype]:
    """CUDA with bfloat16 when a GPU is present, else CPU with float32 (bf16 is slow on CPUs)."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


@dataclass(frozen=True)
class SpeedSettings:
    """What the GPU fast path switches on (`pipelines/speed.py`), as the application read it."""

    compile: bool = False
    warmup: bool = False
    step_cache: float | None = None
    cpu_offload: bool = False
    vae_tiling: str = "auto"
    """auto, on or off: see pipelines/memory.py"""


@dataclass(frozen=True)
class GenerationJob:
    """One generation, after validation and the family's adjustments."""

    prompt: str
    negative_prompt: str
    image: Image.Image | None
    height: int
    width: int
    num_frames: int
    """frames the pipeline generates (a count valid for the family; >= the request's)."""
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    loras: tuple[tuple[str, float], ...] = ()
    """(adapter name, scale) pairs, names checked against the model's adapters."""

    @property
    def mode(self) -> str:
        return "i2v" if self.image is not None else "t2v"

    @property
    def pixel_frames(self) -> int:
        return self.num_frames * self.height * self.width


@dataclass
class LoadedPipelines:
    """A family's loaded pipelines, None for a mode the checkpoint cannot do. Where a checkpoint
    does both, the two pipelines share one set of weights (`from_pipe`)."""

    t2v: Any | None
    i2v: Any | None
    class_name: str

    @property
    def any(self) -> Any:
        """Either pipeline: for what both share (VAE, scheduler, config)."""
        return self.t2v if self.t2v is not None else self.i2v

    def for_job(self, job: GenerationJob) -> Any:
        return self.t2v if job.image is None else self.i2v


def load_both_modes(t2v_class: Any, i2v_class: Any, source: str, class_name: str, device: torch.device,
                    dtype: torch.dtype) -> LoadedPipelines:
    """A checkpoint whose one set of weights does both modes: the text-to-video pipeline loaded
    (safetensors only, no remote code), image-to-video derived from it with `from_pipe`."""
    t2v = t2v_class.from_pretrained(source, **dtype_argument(dtype), device_map=device.type, use_safetensors=True)
    t2v.set_progress_bar_config(disable=True)  # progress is reported through on_step
    # from_pipe casts the shared modules to its own dtype argument (float32 when absent)
    i2v = i2v_class.from_pipe(t2v, **dtype_argument(dtype))
    i2v.set_progress_bar_config(disable=True)
    return LoadedPipelines(t2v=t2v, i2v=i2v, class_name=class_name)


def load_one_mode(t2v_class: Any, i2v_class: Any, source: str, class_name: str, device: torch.device,
                  dtype: torch.dtype, **from_pretrained: Any) -> LoadedPipelines:
    """A family whose text-to-video and image-to-video checkpoints are separate (own transformers):
    the class the checkpoint names, serving its one mode."""
    image_to_video = class_name == i2v_class.__name__
    pipe = (i2v_class if image_to_video else t2v_class).from_pretrained(
        source, **dtype_argument(dtype), device_map=device.type, use_safetensors=True, **from_pretrained)
    pipe.set_progress_bar_config(disable=True)  # progress is reported through on_step
    return LoadedPipelines(t2v=None if image_to_video else pipe, i2v=pipe if image_to_video else None,
                           class_name=class_name)


@dataclass(frozen=True)
class VideoWithAudio:
    """What a family with sound (LTX-2) generates."""

    video: torch.Tensor
    """`(1, F, 3, H, W)` floats in [0, 1]"""
    audio: torch.Tensor
    """`(channels, samples)` floats in [-1, 1]"""
    sample_rate: int


class ModelFamily(Protocol):
    """What a family module provides; `pipelines/ltx.py` is the model to copy. The registry lists
    the modules as `ModelFamily`s, so the type checker holds each module to this."""

    @property
    def FAMILY(self) -> str:
        """Its name in diagnostics and for VIDEO_MODEL_FAMILY."""

    @property
    def CLASS_NAMES(self) -> tuple[str, ...]:
        """The diffusers pipeline classes (`model_index.json` `_class_name`) it serves."""

    @property
    def AUDIO(self) -> bool:
        """Whether it generates a soundtrack with the frames (`generate` returns `VideoWithAudio`)."""

    def load(self, source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
        """t2v and/or i2v, sharing weights where the checkpoint allows (`from_pipe`), None for a
        mode the checkpoint cannot do."""

    def check_request(self, pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
        """Its own rules (raise `Refused`); returns notes on what it adjusts or ignores."""

    def temporal_ratio(self, pipelines: LoadedPipelines) -> int:
        """Valid frame counts are k * ratio + 1. Most families bind `vae_temporal_ratio`."""

    def generate(self, pipelines: LoadedPipelines, job: GenerationJob,
                 on_step: StepCallback) -> torch.Tensor | VideoWithAudio:
        """`(1, F, 3, H, W)` floats in [0, 1] (with the soundtrack where the family has one)."""


def vae_temporal_ratio(pipelines: LoadedPipelines) -> int:
    """The default `temporal_ratio`: the VAE's temporal compression, as the pipelines name it."""
    return int(pipelines.any.vae_scale_factor_temporal)


def check_size_multiple(job: GenerationJob, multiple: int, model_name: str) -> None:
    """Height and width must be multiples of `multiple` (VAE ratio x patch size) for this model."""
    for name in ("height", "width"):
        if getattr(job, name) % multiple:
            raise Refused(f"{name} must be a multiple of {multiple} for {model_name}", field=name)


def smallest_valid_frames(num_frames: int, ratio: int) -> int:
    """The smallest k * ratio + 1 >= num_frames: the counts a causal video VAE with temporal
    compression `ratio` decodes to."""
    return max(0, math.ceil((num_frames - 1) / ratio)) * ratio + 1


def run_pipeline(pipe: Any, job: GenerationJob, on_step: StepCallback, **family_args: Any) -> torch.Tensor:
    """Call a diffusers video pipeline for `job`: `(1, F, 3, H, W)` floats in [0, 1] on its device.
    `family_args` add to (or override) the arguments every video pipeline takes.

    Noise comes from a CPU generator, so a seed draws the same noise on every device."""
    return call_pipeline(pipe, job, on_step, **family_args).frames


def call_pipeline(pipe: Any, job: GenerationJob, on_step: StepCallback, **family_args: Any) -> Any:
    """As `run_pipeline`, but the pipeline's whole output (LTX-2's has `.audio` beside `.frames`)."""

    def step_end(_pipe: Any, step: int, _timestep: Any, callback_kwargs: dict) -> dict:
        on_step(step + 1, job.num_inference_steps)
        return callback_kwargs

    args = {**common_args(job), "height": job.height, "width": job.width, "guidance_scale": job.guidance_scale,
            "callback_on_step_end": step_end}
    args.update(family_args)  # a family may add or override arguments
    return pipe(**args)


def common_args(job: GenerationJob) -> dict[str, Any]:
    """The arguments every diffusers video pipeline takes (some take no size, guidance or callback).
    Noise comes from a CPU generator, so a seed draws the same noise on every device."""
    args: dict[str, Any] = dict(
        prompt=job.prompt, negative_prompt=job.negative_prompt, num_frames=job.num_frames,
        num_inference_steps=job.num_inference_steps, generator=torch.Generator("cpu").manual_seed(job.seed),
        output_type="pt")
    if job.image is not None:
        args["image"] = job.image
    return args


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


def frames_to_uint8(video: torch.Tensor, keep: int) -> np.ndarray:
    """`(1, F, C, H, W)` floats in [0, 1] -> the first `keep` frames as `(keep, H, W, 3)` uint8.

    Converted where the frames are (the GPU), in place, and moved once, 4x smaller than float32.
    """
    frames = video[0, :keep].mul_(255).round_().clamp_(0, 255).to(torch.uint8)  # in place: we own it
    return frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()


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
    for pipe in (pipelines.t2v, pipelines.i2v):
        if pipe is not None:
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
            "speed": self.speed_applied,
            "loras": self.loras.describe() if self.loras is not None else [],
        }
        if self.random_weights:
            info["note"] = "tiny random-weight test model: its output is noise"
        return info

    def generate(self, job: GenerationJob, keep_frames: int,
                 on_step: StepCallback | None = None) -> Generated:
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
            free = free_gpu_bytes(self.device)
            tiled = self.vae_tiling.decide(job.pixel_frames, free)
            attempt = self._generate_once(job, keep_frames, on_step, tiled)
            retry = not tiled and self.vae_tiling.mode == "auto"
            if isinstance(attempt, _OutOfMemory) and attempt.in_decode and retry:
                self.vae_tiling.did_not_fit(job.pixel_frames, free)
                attempt = self._generate_once(job, keep_frames, on_step, tiled=True)
                if isinstance(attempt, Generated):
                    attempt.notes.append("ran out of GPU memory decoding all frames at once: generated again "
                                         "and decoded in tiles (larger requests are tiled from now on)")
        if isinstance(attempt, _OutOfMemory):
            raise OutOfMemory(
                f"out of GPU memory {'decoding' if attempt.in_decode else 'generating'} {job.num_frames} frames "
                f"at {job.width}x{job.height}; ask for fewer frames or a smaller size")
        return attempt

    def _generate_once(self, job: GenerationJob, keep_frames: int, on_step: StepCallback | None,
                       tiled: bool) -> Generated | _OutOfMemory:
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

        set_tiling(self.pipelines.for_job(job).vae, tiled)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        out_of_memory = False
        try:
            output = self.family.generate(self.pipelines, job, record_step)
            video, audio = output, None
            if isinstance(output, VideoWithAudio):
                video, audio = output.video, Audio(output.audio.float().cpu().numpy(), output.sample_rate)
            assert isinstance(video, torch.Tensor)
            frames = frames_to_uint8(video, keep_frames)
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
        return Generated(frames=frames, generated_frames=job.num_frames, timing_ms=timing,
                         peak_gpu_memory_mb=peak, vae_decode_gpu_memory_mb=decode_mb, vae_tiling=tiled,
                         audio=audio)


@dataclass(frozen=True)
class _OutOfMemory:
    in_decode: bool
    """every denoising step had finished: the VAE decode ran out"""
