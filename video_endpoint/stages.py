"""The steps of one request, each a small function: decode -> plan -> generate -> encode ->
diagnostics. `video_endpoint.endpoint.EndpointHandler` strings them together; each is usable (and
tested) on its own.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from encoders import cores
from encoders.base import ArrivingFrames, Audio, Clip, FormatOptions
from encoders.registry import FORMATS
from pipelines.base import CONDITIONING_FIELDS, FrameCount, GenerationJob, Keyframe, StepCallback
from pipelines.errors import OutOfMemory as ModelOutOfMemory
from pipelines.errors import Refused
from pipelines.model import Generated, VideoModel
from video_endpoint import uploads
from video_endpoint.errors import EncodeFailed, InvalidRequest, Unsupported, from_model
from video_endpoint.http_url import HttpTarget
from video_endpoint.image_input import fit_image, open_images
from video_endpoint.request_schema import (
    V2V_STRENGTH,
    Limits,
    RequestFields,
    format_options,
    output_fps,
    parse_payload,
)
from video_endpoint.video_input import InputVideo, read_video

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


EXTEND_CONTEXT_FRAMES = 17  # the last frames of an `extend` video read; a family uses those its rule allows
FRAME_ROUNDING_ROOM = 16  # a video-to-video source is read this far past num_frames: a family may round up


@dataclass
class Decoded:
    """A request once parsed and its images and videos decoded: what the rest of the stages (and
    a queued job) work from, so none of it happens twice."""

    request: RequestFields
    image: Image.Image | None
    timer: StageTimer
    uploads: dict[str, HttpTarget] = field(default_factory=dict)
    """where outputs go instead of into the answer, checked (`uploads.targets`)"""
    last_image: Image.Image | None = None
    keyframe_images: tuple[Image.Image, ...] = ()
    video: InputVideo | None = None
    extend: InputVideo | None = None
    extended: tuple[Image.Image, ...] = ()
    """`return_extended`: every frame of the extended video, at the request's fps (the answer's first)"""
    request_id: str = ""
    planned: tuple[GenerationJob, list[str]] | None = None
    """`plan`'s answer, once planned (a job is planned when it is submitted, and run from that)"""

    def held_bytes(self) -> int:
        """The memory its decoded images and video frames take (Pillow keeps RGB in 4 bytes a pixel)."""
        images = [self.image, self.last_image, *self.keyframe_images,
                  *(self.video.frames if self.video else ()), *(self.extend.frames if self.extend else ()),
                  *self.extended]
        return sum(4 * image.width * image.height for image in images if image is not None)


@dataclass
class Produced:
    """A generated and encoded answer whose uploads (if any) are still to be done."""

    result: dict[str, Any]
    to_upload: dict[str, bytes] = field(default_factory=dict)
    where: dict[str, HttpTarget] = field(default_factory=dict)
    mode: str | None = None
    """the plan's mode, once planned (what the metrics count a failed request under)"""
    waited_s: float | None = None
    """how long it waited for the model (a job: since it was submitted)"""


@dataclass
class Parsed:
    """A request's body validated, its images and videos not yet decoded."""

    request: RequestFields
    timer: StageTimer
    uploads: dict[str, HttpTarget]
    request_id: str = ""


def new_request_id() -> str:
    """An id for a request that came without one (the local server's X-Request-Id's shape)."""
    return uuid.uuid4().hex[:16]


def parse(data: Any, limits: Limits, upload_hosts: tuple[str, ...] = (), request_id: str | None = None) -> Parsed:
    """Validate the body (its upload URLs against `upload_hosts`): quick, nothing decoded.
    `request_id`: the client's (X-Request-Id), else a new one; it follows the request to its
    diagnostics, its job, the job's log lines and webhook."""
    timer = StageTimer()
    with timer.stage("parse"):
        request = parse_payload(data, limits)
        where = uploads.targets(request, upload_hosts)
    return Parsed(request, timer, where, request_id or new_request_id())


def decode(data: Any, limits: Limits, upload_hosts: tuple[str, ...] = (),
           cancelled: threading.Event | None = None) -> Decoded:
    """`parse`, then `decode_media`."""
    return decode_media(parse(data, limits, upload_hosts), limits, cancelled)


def decode_media(parsed: Parsed, limits: Limits, cancelled: threading.Event | None = None) -> Decoded:
    """Decode the request's images (their pixels counted together against VIDEO_MAX_IMAGE_PIXELS
    from their headers, before any is decoded) and videos (`cancelled` set stops their reading);
    the job is planned by `plan`."""
    request, timer = parsed.request, parsed.timer
    size = request.width, request.height
    images = {request.image_field: request.image, "last_image": request.last_image,
              **{f"keyframes.{i}.image": k.image for i, k in enumerate(request.keyframes)}}
    decoded: dict[str, Image.Image] = {}
    if any(text is not None for text in images.values()):
        with timer.stage("image_decode"):
            opened = open_images({field: text for field, text in images.items() if text is not None}, limits)
            decoded = {field: fit_image(image, *size, field) for field, image in opened.items()}
    video = extend = None
    if request.video is not None:
        with timer.stage("video_decode"):
            video = read_video(request.video, "video", *size, request.fps, limits,
                               count=request.num_frames + FRAME_ROUNDING_ROOM, cancelled=cancelled)
        if len(video.frames) < request.num_frames:
            raise InvalidRequest(f"video holds {len(video.frames)} frames at {request.fps} fps: ask for that many "
                                 "num_frames at most, or a lower fps", field="video")
    extended: tuple[Image.Image, ...] = ()
    if request.extend is not None:
        room = limits.max_frames - request.num_frames  # the whole answer is at most VIDEO_MAX_FRAMES
        with timer.stage("video_decode"):
            extend = read_video(request.extend, "extend", *size, request.fps, limits,
                                count=room + 1 if request.return_extended else EXTEND_CONTEXT_FRAMES, keep="last",
                                cancelled=cancelled)
        if request.return_extended:
            if len(extend.frames) > room:
                raise InvalidRequest(f"extend: with return_extended, its frames at {request.fps} fps and the "
                                     f"{request.num_frames} new ones must be at most {limits.max_frames} (setting "
                                     "VIDEO_MAX_FRAMES)", field="extend")
            extended = tuple(extend.frames)
            extend = replace(extend, frames=extend.frames[-EXTEND_CONTEXT_FRAMES:])
    return Decoded(request, decoded.get(request.image_field), timer, parsed.uploads, decoded.get("last_image"),
                   tuple(decoded[f"keyframes.{i}.image"] for i in range(len(request.keyframes))), video, extend,
                   extended, request_id=parsed.request_id)


def with_seed(data: Any) -> Any:
    """The body with a seed drawn where its inputs name none (a job's, when submitted: run again
    elsewhere, it makes the same video)."""
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if isinstance(inputs, dict) and inputs.get("seed") is None:
        return {**data, "inputs": {**inputs, "seed": secrets.randbits(SEED_BITS)}}
    return data


def plan(decoded: Decoded, model: VideoModel) -> tuple[GenerationJob, list[str]]:
    """The family's adjustments (e.g. 8k+1 frames) and a seed; notes say what was adjusted.
    Planned once: kept in `decoded.planned`."""
    if decoded.planned is None:
        decoded.planned = _plan(decoded, model)
    job, notes = decoded.planned
    return job, list(notes)


def _plan(decoded: Decoded, model: VideoModel) -> tuple[GenerationJob, list[str]]:
    request, image = decoded.request, decoded.image
    asked = [name for name in CONDITIONING_FIELDS if getattr(request, name) not in (None, [])]
    for name in asked:
        if name not in model.family.CONDITIONING:
            served = ", ".join(sorted(model.family.CONDITIONING)) or "none of them"
            raise Unsupported(f"model '{model.name}' ({model.family.FAMILY}) cannot use {name} (of last_image, "
                              f"keyframes, video and extend it serves {served})", field=name)
    mode = "t2v" if image is None else "i2v"
    if not asked and mode not in model.modes:
        raise Unsupported(
            f"model '{model.name}' ({model.family.FAMILY} {model.pipelines.class_name}) cannot do "
            + ("image-to-video: send the request without an image" if image is not None
               else "text-to-video: it animates an input image, send one in 'image'"), field="image")
    for name in request.outputs:
        if FORMATS[name].NEEDS_AUDIO and not model.family.AUDIO:
            raise Unsupported(f"{name} is the soundtrack alone, and model '{model.name}' ({model.family.FAMILY}) "
                              "generates none", field=f"outputs.{name}")
    context, count, video, notes = frames_to_generate(decoded, model)
    strength = request.strength if request.strength is not None else V2V_STRENGTH
    if video and int(request.num_inference_steps * strength) < 1:  # diffusers runs int(steps x strength) steps
        raise InvalidRequest(f"strength {strength} of {request.num_inference_steps} steps runs none: raise strength "
                             "or num_inference_steps", field="strength")
    seed = request.seed if request.seed is not None else secrets.randbits(SEED_BITS)
    loras = check_loras(request, model)
    job = GenerationJob(
        prompt=request.prompt, negative_prompt=request.negative_prompt, image=image,
        height=request.height, width=request.width, num_frames=count.generated, fps=request.fps,
        num_inference_steps=request.num_inference_steps, guidance_scale=request.guidance_scale,
        seed=seed, loras=loras, keep_frames=request.num_frames, first_frame=len(context),
        last_image=decoded.last_image,
        keyframes=tuple(Keyframe(picture, choice.frame + len(context), choice.strength)
                        for picture, choice in zip(decoded.keyframe_images, request.keyframes, strict=True)),
        video=video, strength=strength,
        context=context, enhance_prompt=request.enhance_prompt, auto_duration=request.auto_duration)
    job, own = checkpoint_defaults(job, request, model)
    notes += own
    if job.auto_duration:
        if not model.family.predicts_duration(model.pipelines):
            raise Unsupported(f"model '{model.name}' ({model.family.FAMILY}) does not choose a clip's length: send "
                              "num_frames", field="auto_duration")
        if asked:
            raise InvalidRequest(f"auto_duration lets the model choose the length, which {asked[0]} cannot have",
                                 field="auto_duration")
    if job.enhance_prompt and model.family.prompt_enhancer(model.pipelines) is None:
        raise Unsupported(f"model '{model.name}' ({model.family.FAMILY}) carries no prompt enhancer",
                          field="enhance_prompt")
    with model_errors_answered():
        notes += model.family.check_request(model.pipelines, job)
    if job.auto_duration:
        notes.append(f"auto_duration: the model chooses the length, at most {request.num_frames} frames "
                     f"({request.num_frames / request.fps:.2f} s)")
    elif count.generated != len(context) + request.num_frames:
        kept = f"returned the first {request.num_frames}" if not context else (
            f"returned the {request.num_frames} after the {len(context)} of the extended video")
        notes.append(f"generated {count.generated} frames ({model.family.FAMILY} needs {count.rule} frames) and "
                     + kept)
    return job, notes


def checkpoint_defaults(job: GenerationJob, request: RequestFields,
                        model: VideoModel) -> tuple[GenerationJob, list[str]]:
    """The job with the checkpoint's own values (`request_defaults`) for the fields the request left
    out, and a note on each."""
    own = {name: value for name, value in model.family.request_defaults(model.pipelines).items()
           if name not in request.model_fields_set}
    notes = [f"{name} {value}: this checkpoint's own (the request sent none)" for name, value in own.items()]
    return replace(job, **own), notes


def frames_to_generate(decoded: Decoded, model: VideoModel) -> tuple[
        tuple[Image.Image, ...], FrameCount, tuple[Image.Image, ...], list[str]]:
    """The frames the family generates: an extended video's last frames (as many as its frame rule
    allows) then the request's; with a video to transform, one of its frames per generated frame."""
    request, notes = decoded.request, []
    context: tuple[Image.Image, ...] = ()
    if decoded.extend is not None:
        available = len(decoded.extend.frames)
        used = next(n for n in range(available, 0, -1)
                    if model.family.frame_count(model.pipelines, n).generated == n)
        context = tuple(decoded.extend.frames[-used:])
    count = model.family.frame_count(model.pipelines, len(context) + request.num_frames)
    video: tuple[Image.Image, ...] = ()
    if decoded.video is not None:
        video = tuple(decoded.video.frames[:count.generated])
        if len(video) < count.generated:
            notes.append(f"video holds {len(video)} frames at {request.fps} fps; its last frame was repeated to "
                         f"the {count.generated} generated")
            video += (video[-1],) * (count.generated - len(video))
    return context, count, video, notes


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


def generate(model: VideoModel, job: GenerationJob, timer: StageTimer, on_step: StepCallback | None,
             streaming: Streaming | None = None) -> Generated:
    """Generate `job`; the frames go to `streaming`'s encoders as they are decoded, where it is given."""
    with timer.stage("generate"), model_errors_answered():
        return model.generate(job, on_step=on_step, sink=streaming)


def after_extended(generated: Generated, decoded: Decoded) -> Generated:
    """`return_extended`: the extended video's frames, then the generated ones (a soundtrack starts
    with silence as long as the extended video plays)."""
    if not decoded.extended:
        return generated
    before = np.stack([np.asarray(frame.convert("RGB")) for frame in decoded.extended])
    audio = generated.audio
    if audio is not None:
        silence = round(len(before) / decoded.request.fps * audio.sample_rate)
        audio = Audio(np.pad(audio.samples, ((0, 0), (silence, 0))), audio.sample_rate)
    return replace(generated, frames=np.concatenate([before, generated.frames]), audio=audio, streamed=False)


def _encode_one(name: str, clip: Clip, options: FormatOptions) -> tuple[bytes, float]:
    """The format's bytes, and when it finished (`time.perf_counter()`)."""
    try:
        data = FORMATS[name].encode(clip, options)
    except Exception as exc:
        raise EncodeFailed(f"could not encode the {name} output", field=f"outputs.{name}") from exc
    return data, time.perf_counter()


def _tasks(frames: np.ndarray, request: RequestFields, job: GenerationJob, threads: int,
           audio: Audio | None = None, arriving: ArrivingFrames | None = None) -> dict[str, tuple[str, Clip, Any]]:
    """Each requested format's `_encode_one` arguments: `threads` cores shared between the formats
    by their work (`ENCODE_COST`)."""
    metadata = {"prompt": request.prompt, "negative_prompt": request.negative_prompt,
                "seed": job.seed, "mode": job.mode}
    shares = cores.share(threads, {name: FORMATS[name].ENCODE_COST for name in request.outputs})
    return {name: (name, Clip(frames, output_fps(request, name), metadata, audio=audio, threads=shares[name],
                              arriving=arriving),
                   format_options(request, name)) for name in request.outputs}


class Streaming:
    """The formats that stream (`STREAMS`), encoding the frames of one answer while the VAE still
    decodes the later ones: the model's `FrameSink`. It starts them when the decoder makes its first
    frames (`open`): until then, while the request waits for the model and while it denoises, it
    holds no frames, thread, ffmpeg or core."""

    def __init__(self, request: RequestFields, job: GenerationJob, budget: cores.CoreBudget) -> None:
        self.request, self.job, self.budget = request, job, budget
        self.frames: ArrivingFrames | None = None
        self.lease: cores.Lease | None = None
        self.futures: dict[str, Future[tuple[bytes, float]]] = {}
        self.pool: ThreadPoolExecutor | None = None

    @classmethod
    def start(cls, model: VideoModel, request: RequestFields, job: GenerationJob,
              budget: cores.CoreBudget) -> Streaming | None:
        """Where the model streams its frames (`SpeedSettings.stream_encode`) and the answer can be
        written before its end: a format that streams, no soundtrack (ffmpeg muxes it from the
        start), a known length (not `auto_duration`), nothing before the frames generated (not
        `return_extended`). None otherwise."""
        if not (model.speed.stream_encode and any(FORMATS[name].STREAMS for name in request.outputs)
                and not model.family.AUDIO and not job.auto_duration and not request.return_extended):
            return None
        return cls(request, job, budget)

    def open(self) -> np.ndarray:
        """The first frames are decoded: the streaming formats start, on the cores leased now, shared
        with the formats that wait for the finished clip."""
        job = self.job
        self.lease = self.budget.lease()
        self.frames = ArrivingFrames(np.empty((job.returned_frames, job.height, job.width, 3), np.uint8))
        tasks = {name: task for name, task in _tasks(self.frames.frames, self.request, job, self.lease.threads,
                                                     arriving=self.frames).items() if FORMATS[name].STREAMS}
        self.pool = ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="encode")
        self.futures = {name: self.pool.submit(_encode_one, *task) for name, task in tasks.items()}
        return self.frames.frames

    def arrived(self, count: int) -> None:
        assert self.frames is not None
        self.frames.arrived(count)

    def finish(self, generated: Generated) -> dict[str, Future[tuple[bytes, float]]]:
        """The encoders that go on with the generated frames; none where the frames were not all
        streamed (`Generated.streamed`): those stop, and every format encodes the finished clip."""
        if generated.streamed and self.frames is not None:
            self.frames.complete()
            return self.futures
        self.close()
        return {}

    def close(self) -> None:
        """Stop the encoders whose frames are not complete (a failed generation), free the threads
        and give the cores back."""
        if self.frames is not None:
            self.frames.withdraw()
        wait(self.futures.values())
        if self.pool is not None:
            self.pool.shutdown()
        if self.lease is not None:
            self.lease.release()


class Encoded(NamedTuple):
    outputs: dict[str, Any]
    """what the answer carries (base64 or raw files), without the outputs to upload"""
    info: dict[str, Any]
    """diagnostics.outputs"""
    to_upload: dict[str, bytes]
    """the files of the formats the request uploads (`upload`), for `uploads.upload_all`"""


def encode(generated: Generated, request: RequestFields, job: GenerationJob, timer: StageTimer,
           where: Mapping[str, HttpTarget] | None = None, budget: cores.CoreBudget | None = None,
           streaming: Streaming | None = None) -> Encoded:
    """Encode every requested format from the same uint8 frames, concurrently, on cores leased from
    `budget` (default: every core this process may use) and shared between them (`_tasks`), so the
    stage costs about the slowest encoder, not the sum; those `streaming` started go on with the
    frames they were given as they were decoded, on its lease. Base64 once at the end; the formats
    in `where` are set aside for their upload, which runs apart (after the model is free).
    `encode.<format>` times run from the end of generating to that format's end."""
    with timer.stage("encode"):
        begun = time.perf_counter()
        running = streaming.finish(generated) if streaming is not None else {}
        if running and streaming is not None and streaming.lease is not None:
            lease = streaming.lease
        else:
            lease = (budget or cores.CoreBudget(cores.available())).lease()
        tasks = _tasks(generated.frames, request, job, lease.threads, generated.audio)
        try:
            if len(tasks) == 1 and not running:
                done = {name: _encode_one(*task) for name, task in tasks.items()}
            else:
                with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="encode") as pool:
                    futures = {name: running[name] if name in running else pool.submit(_encode_one, *task)
                               for name, task in tasks.items()}
                    done = {name: future.result() for name, future in futures.items()}
        finally:
            lease.release()
            if streaming is not None:
                streaming.close()
    files = {name: data for name, (data, _) in done.items()}
    info = {}
    for name, (data, finished) in done.items():
        timer.timing_ms[f"encode.{name}"] = round((finished - begun) * 1000, 2)
        info[name] = {"mime": FORMATS[name].MIME, "bytes": len(data), "fps": tasks[name][1].fps,
                      "threads": tasks[name][1].threads, **({"streamed": True} if name in running else {})}
    to_upload = {name: data for name, data in files.items() if name in (where or {})}
    files = {name: data for name, data in files.items() if name not in to_upload}
    if not request.return_base64:
        return Encoded(files, info, to_upload)
    with timer.stage("base64"):
        outputs = {f"{name}_base64": base64.b64encode(data).decode("ascii") for name, data in files.items()}
    return Encoded(outputs, info, to_upload)


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
    video: InputVideo | None = None
    extend: InputVideo | None = None


def diagnostics(model: VideoModel, outcome: Outcome) -> dict[str, Any]:
    request, job, generated, timer = outcome.request, outcome.job, outcome.generated, outcome.timer
    result = {
        "mode": job.mode,
        **({"conditioning": conditioning(outcome)} if job.conditioning else {}),
        "seed": job.seed,
        "num_frames": len(generated.frames),  # the request's, or what the model chose (auto_duration)
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
    if generated.enhanced_prompt is not None:
        result["enhanced_prompt"] = generated.enhanced_prompt
    if generated.audio is not None:
        result["audio"] = {"sample_rate": generated.audio.sample_rate, "channels": generated.audio.channels,
                           "seconds": round(len(generated.frames) / request.fps, 4),
                           "generated_seconds": round(generated.audio.seconds, 4)}
    if generated.peak_gpu_memory_mb is not None:
        result["peak_gpu_memory_mb"] = round(generated.peak_gpu_memory_mb, 1)
        result["vae_decode_gpu_memory_mb"] = round(generated.vae_decode_gpu_memory_mb or 0.0, 1)
    return result


def conditioning(outcome: Outcome) -> dict[str, Any]:
    """What the video was conditioned on beyond `image`, as frames of the answer."""
    request, job = outcome.request, outcome.job
    used: dict[str, Any] = {}
    if request.last_image is not None:
        used["last_image"] = {"frame": request.num_frames - 1}
    if request.keyframes:
        used["keyframes"] = [{"frame": k.frame, "strength": k.strength} for k in request.keyframes]
    if outcome.video is not None:
        used["video"] = {**outcome.video.describe(), "strength": job.strength, "frames_used": len(job.video)}
    if outcome.extend is not None:
        used["extend"] = {**outcome.extend.describe(), "frames_used": len(job.context),
                          "continues_after_frame": len(job.context) - 1}
    return used
