"""The steps of one request, each a small function: decode -> plan -> generate -> encode ->
diagnostics. `video_endpoint.endpoint.EndpointHandler` strings them together; each is usable (and
tested) on its own.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from encoders.base import Clip, FormatOptions
from encoders.registry import FORMATS
from pipelines.base import GenerationJob, StepCallback
from pipelines.errors import OutOfMemory as ModelOutOfMemory
from pipelines.errors import Refused
from pipelines.model import Generated, VideoModel
from video_endpoint.errors import EncodeFailed, InvalidRequest, Unsupported, from_model
from video_endpoint.image_input import decode_image
from video_endpoint.request_schema import Limits, RequestFields, format_options, output_fps, parse_payload

SEED_BITS = 31  # drawn seeds fit every client's integer type


class StageTimer:
    """Wall time per stage in milliseconds, in the order the stages ran."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.timing_ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        begun = time.perf_counter()
        try:
            with torch.profiler.record_function(f"stage.{name}"):  # names the stage in a profiler trace
                yield
        finally:
            self.timing_ms[name] = round((time.perf_counter() - begun) * 1000, 2)

    def resume(self) -> None:
        """Count from now on, as if the stages so far had just run: a wait in a queue is not the
        request's time."""
        self.started = time.perf_counter() - sum(self.timing_ms.values()) / 1000

    def total(self) -> dict[str, float]:
        return {**self.timing_ms, "total": round((time.perf_counter() - self.started) * 1000, 2)}


@dataclass
class Decoded:
    """A request once parsed and its image decoded: what the rest of the stages (and a queued
    job) work from, so neither happens twice."""

    request: RequestFields
    image: Image.Image | None
    timer: StageTimer


def decode(data: Any, limits: Limits) -> Decoded:
    """Validate the body and decode the input image; the job is planned by `plan`."""
    timer = StageTimer()
    with timer.stage("parse"):
        request = parse_payload(data, limits)
    image = None
    if request.image is not None:
        with timer.stage("image_decode"):
            image = decode_image(request.image, request.width, request.height, limits)
    return Decoded(request, image, timer)


def plan(request: RequestFields, image: Image.Image | None, model: VideoModel) -> tuple[GenerationJob, list[str]]:
    """The family's adjustments (e.g. 8k+1 frames) and a seed; notes say what was adjusted."""
    mode = "t2v" if image is None else "i2v"
    if mode not in model.modes:
        raise Unsupported(
            f"model '{model.name}' ({model.family.FAMILY} {model.pipelines.class_name}) cannot do "
            + ("image-to-video: send the request without an image" if image is not None
               else "text-to-video: it animates an input image, send one in 'image'"), field="image")
    for name in request.outputs:
        if FORMATS[name].NEEDS_AUDIO and not model.family.AUDIO:
            raise Unsupported(f"{name} is the soundtrack alone, and model '{model.name}' ({model.family.FAMILY}) "
                              "generates none", field=f"outputs.{name}")
    count = model.family.frame_count(model.pipelines, request.num_frames)
    seed = request.seed if request.seed is not None else secrets.randbits(SEED_BITS)
    loras = check_loras(request, model)
    job = GenerationJob(
        prompt=request.prompt, negative_prompt=request.negative_prompt, image=image,
        height=request.height, width=request.width, num_frames=count.generated, fps=request.fps,
        num_inference_steps=request.num_inference_steps, guidance_scale=request.guidance_scale,
        seed=seed, loras=loras, keep_frames=request.num_frames)
    with model_errors_answered():
        notes = model.family.check_request(model.pipelines, job)
    if count.generated != request.num_frames:
        notes.append(f"generated {count.generated} frames ({model.family.FAMILY} needs {count.rule} frames) and "
                     f"returned the first {request.num_frames}")
    return job, notes


@contextmanager
def model_errors_answered() -> Iterator[None]:
    """What a family or the model runtime raises, as this endpoint's errors."""
    try:
        yield
    except (Refused, ModelOutOfMemory) as exc:
        raise from_model(exc) from None


def check_loras(request: RequestFields, model: VideoModel) -> tuple[tuple[str, float], ...]:
    """The request's adapters, each one the server has, each once. A name is only ever looked up
    among the loaded adapters: a path or a URL is just an unknown name."""
    known = model.loras.names if model.loras is not None else []
    seen: set[str] = set()
    for index, choice in enumerate(request.loras):
        field = f"loras.{index}.name"
        if choice.name not in known:
            listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
            raise InvalidRequest("unknown LoRA adapter; " + (f"this server has: {listed}" if known else
                                                             "this server has none"), field=field)
        if choice.name in seen:
            raise InvalidRequest("this LoRA adapter is listed twice; give it once", field=field)
        seen.add(choice.name)
    return tuple((choice.name, choice.scale) for choice in request.loras)


def generate(model: VideoModel, job: GenerationJob, timer: StageTimer, on_step: StepCallback | None) -> Generated:
    with timer.stage("generate"), model_errors_answered():
        return model.generate(job, on_step=on_step)


def _encode_one(name: str, clip: Clip, options: FormatOptions) -> tuple[bytes, float]:
    begun = time.perf_counter()
    try:
        data = FORMATS[name].encode(clip, options)
    except Exception as exc:
        raise EncodeFailed(f"could not encode the {name} output", field=f"outputs.{name}") from exc
    return data, round((time.perf_counter() - begun) * 1000, 2)


def encode(generated: Generated, request: RequestFields, job: GenerationJob,
           timer: StageTimer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Encode every requested format from the same uint8 frames, concurrently (ffmpeg runs in
    its own process, Pillow and numpy release the GIL), so the stage costs about the slowest
    encoder, not the sum. Base64 once at the end."""
    metadata = {"prompt": request.prompt, "negative_prompt": request.negative_prompt,
                "seed": job.seed, "mode": job.mode}
    tasks = {name: (name, Clip(generated.frames, output_fps(request, name), metadata, audio=generated.audio),
                    format_options(request, name)) for name in request.outputs}
    with timer.stage("encode"):
        if len(tasks) == 1:
            done = {name: _encode_one(*task) for name, task in tasks.items()}
        else:
            with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="encode") as pool:
                futures = {name: pool.submit(_encode_one, *task) for name, task in tasks.items()}
                done = {name: future.result() for name, future in futures.items()}
    files = {name: data for name, (data, _) in done.items()}
    info = {}
    for name, (data, ms) in done.items():
        timer.timing_ms[f"encode.{name}"] = ms
        info[name] = {"mime": FORMATS[name].MIME, "bytes": len(data), "fps": tasks[name][1].fps}
    if not request.return_base64:
        return files, info
    with timer.stage("base64"):
        return {f"{name}_base64": base64.b64encode(data).decode("ascii") for name, data in files.items()}, info


@dataclass
class Outcome:
    """What one request went through, stage by stage: what `diagnostics` reports."""

    request: RequestFields
    job: GenerationJob
    notes: list[str]
    """what the family and the stages adjusted"""
    generated: Generated
    outputs_info: dict[str, Any]
    timer: StageTimer


def diagnostics(model: VideoModel, outcome: Outcome) -> dict[str, Any]:
    request, job, generated, timer = outcome.request, outcome.job, outcome.generated, outcome.timer
    result = {
        "mode": job.mode,
        "seed": job.seed,
        "num_frames": request.num_frames,
        "generated_frames": generated.generated_frames,
        "height": job.height,
        "width": job.width,
        "fps": request.fps,
        "num_inference_steps": job.num_inference_steps,
        "guidance_scale": job.guidance_scale,
        "loras": [{"name": name, "scale": scale} for name, scale in job.loras],
        "model": model.describe(),
        "device": str(model.device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "outputs": outcome.outputs_info,
        "adjusted": outcome.notes + generated.notes,
        "vae_tiling": generated.vae_tiling,
        "timing_ms": {**timer.total(), **{f"generate.{k}": round(v, 2)
                                          for k, v in generated.timing_ms.items()}},
    }
    if generated.audio is not None:
        result["audio"] = {"sample_rate": generated.audio.sample_rate, "channels": generated.audio.channels,
                           "seconds": round(request.num_frames / request.fps, 4),
                           "generated_seconds": round(generated.audio.seconds, 4)}
    if generated.peak_gpu_memory_mb is not None:
        result["peak_gpu_memory_mb"] = round(generated.peak_gpu_memory_mb, 1)
        result["vae_decode_gpu_memory_mb"] = round(generated.vae_decode_gpu_memory_mb or 0.0, 1)
    return result
