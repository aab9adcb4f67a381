"""The kit of a family author: device and dtype choice, the job a family runs, the pipelines it
loads, the `ModelFamily` contract and the shared pipeline call. The loaded model the application
talks to (`VideoModel`) is in `pipelines/model.py`."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import diffusers
import torch
from packaging.version import Version
from PIL import Image

from pipelines.errors import CannotServe, Refused

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
    stream_encode: bool = False
    """hand the frames to the encoders that stream while the VAE decodes later ones (`pipelines.model.DecodedChunks`)"""


CONDITIONING_FIELDS = ("last_image", "keyframes", "video", "extend")
"""What a request may condition a video on beyond `image`; each family lists those it serves."""


@dataclass(frozen=True)
class Keyframe:
    """An image that frame `frame` of the generated video should be."""

    image: Image.Image
    frame: int
    strength: float = 1.0


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
    keep_frames: int | None = None
    """frames returned: this many of `num_frames`, from `first_frame` on (None: all of them)."""
    first_frame: int = 0
    """the first generated frame returned (`extend`: the one after the context)"""
    last_image: Image.Image | None = None
    """the image the returned video ends on"""
    keyframes: tuple[Keyframe, ...] = ()
    video: tuple[Image.Image, ...] = ()
    """video-to-video: the frames to transform, one per generated frame"""
    strength: float = 1.0
    """video-to-video: how much may change (0: nothing, 1: everything)"""
    context: tuple[Image.Image, ...] = ()
    """extend: the frames the video continues; they are generated frames 0 .. len - 1"""
    enhance_prompt: bool = False
    """rewrite `prompt` with the model's own prompt enhancer before generating"""
    auto_duration: bool = False
    """the model chooses the length, at most `keep_frames` frames (`num_frames` is the cap's frame count)"""

    @property
    def returned_frames(self) -> int:
        return self.keep_frames if self.keep_frames is not None else self.num_frames - self.first_frame

    @property
    def last_returned_frame(self) -> int:
        """The generated index of the answer's last frame (where `last_image` belongs)."""
        return self.first_frame + self.returned_frames - 1

    @property
    def conditioning(self) -> list[str]:
        """Which of `CONDITIONING_FIELDS` this job uses."""
        used = {"last_image": self.last_image is not None, "keyframes": bool(self.keyframes),
                "video": bool(self.video), "extend": bool(self.context)}
        return [name for name in CONDITIONING_FIELDS if used[name]]

    @property
    def mode(self) -> str:
        """t2v, i2v, flf2v (first and last frame), keyframes, v2v or extend."""
        if self.context:
            return "extend"
        if self.video:
            return "v2v"
        if self.keyframes or (self.last_image is not None and self.image is None):
            return "keyframes"
        if self.last_image is not None:
            return "flf2v"
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
    derived: dict[str, Any] = field(default_factory=dict)
    """further pipelines on the same weights (`from_pipe`), by the use a family names them for
    (e.g. "condition", "v2v")"""

    @property
    def all(self) -> list[Any]:
        """Every distinct pipeline: for what is set on each (progress bars, log filters)."""
        pipes = [self.t2v, self.i2v, *self.derived.values()]
        return [pipe for i, pipe in enumerate(pipes) if pipe is not None and all(pipe is not p for p in pipes[:i])]

    @property
    def any(self) -> Any:
        """Either pipeline: for what both share (VAE, scheduler, config)."""
        return self.t2v if self.t2v is not None else self.i2v

    def for_job(self, job: GenerationJob) -> Any:
        return self.t2v if job.image is None else self.i2v


class TextTokenizer:
    """The part of a multimodal processor (Qwen2.5-VL's, Gemma 4's) that pipelines call for text:
    text to token ids and back, and the chat template of text-only messages. Loaded from the
    processor's folder without the processor's image and video halves, whose video processor needs
    torchvision: a server without torchvision serves these checkpoints too."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, source: str, subfolder: str) -> TextTokenizer:
        """The tokenizer in checkpoint `source`'s `subfolder` (where the processor keeps it)."""
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(source, subfolder=subfolder))

    def __call__(self, text: str | list[str], images: None = None, videos: None = None, **kwargs: Any) -> Any:
        if images is not None or videos is not None:
            raise ValueError("only text is tokenized here")
        return self.tokenizer(text, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return str(self.tokenizer.decode(*args, **kwargs))

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return list(self.tokenizer.batch_decode(*args, **kwargs))

    def apply_chat_template(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        """Messages whose content is a list of parts, as processors take them: text parts only."""
        flat = []
        for message in messages:
            content = message["content"]
            if not isinstance(content, str):
                if any(part.get("type") != "text" for part in content):
                    raise ValueError("only text is tokenized here")
                content = "".join(part["text"] for part in content)
            flat.append({**message, "content": content})
        return self.tokenizer.apply_chat_template(flat, **kwargs)


class NoEmptyFloat32Warning(logging.Filter):
    """diffusers warns that a model has modules "that should be kept in float32: []" whenever a model
    whose list is empty is cast with `.to(dtype)` (as `from_pipe` does): twice per model at load,
    nothing to act on. A warning that names modules is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


def quiet_library_noise() -> None:
    """Install `NoEmptyFloat32Warning` on diffusers' logger, once per process."""
    diffusers_models = logging.getLogger("diffusers.models.modeling_utils")
    if not any(isinstance(existing, NoEmptyFloat32Warning) for existing in diffusers_models.filters):
        diffusers_models.addFilter(NoEmptyFloat32Warning())


def load_pipeline(pipeline_class: Any, source: str, device: torch.device, dtype: torch.dtype,
                  **components: Any) -> Any:
    """`pipeline_class` from checkpoint `source` (safetensors only, no remote code), with
    `components` in place of the checkpoint's; a `TextTokenizer`, which diffusers' type check would
    refuse in place of a processor, is registered once the rest is loaded."""
    text_only = {name: part for name, part in components.items() if isinstance(part, TextTokenizer)}
    pipe = pipeline_class.from_pretrained(source, **dtype_argument(dtype), device_map=device.type,
                                          use_safetensors=True, **{**components, **dict.fromkeys(text_only)})
    pipe.register_modules(**text_only)
    pipe.set_progress_bar_config(disable=True)  # progress is reported through on_step
    return pipe


def load_both_modes(t2v_class: Any, i2v_class: Any, source: str, class_name: str, device: torch.device,
                    dtype: torch.dtype, **components: Any) -> LoadedPipelines:
    """A checkpoint whose one set of weights does both modes: the text-to-video pipeline loaded
    (`load_pipeline`), image-to-video derived from it with `from_pipe`."""
    t2v = load_pipeline(t2v_class, source, device, dtype, **components)
    return LoadedPipelines(t2v=t2v, i2v=derive(i2v_class, t2v, dtype), class_name=class_name)


def derive(pipeline_class: Any, pipe: Any, dtype: torch.dtype, **components: Any) -> Any:
    """Another pipeline on `pipe`'s weights (`from_pipe`: no copy), kept in `dtype` (from_pipe casts
    the shared modules to its own dtype argument, float32 when absent); `components` replace some."""
    derived = pipeline_class.from_pipe(pipe, **components, **dtype_argument(dtype))
    derived.set_progress_bar_config(disable=True)
    return derived


def load_one_mode(t2v_class: Any, i2v_class: Any, source: str, class_name: str, device: torch.device,
                  dtype: torch.dtype, **components: Any) -> LoadedPipelines:
    """A family whose text-to-video and image-to-video checkpoints are separate (own transformers):
    the class the checkpoint names (`load_pipeline`), serving its one mode."""
    image_to_video = class_name == i2v_class.__name__
    pipe = load_pipeline(i2v_class if image_to_video else t2v_class, source, device, dtype, **components)
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

    @property
    def CONDITIONING(self) -> frozenset[str]:
        """Which of `CONDITIONING_FIELDS` its pipelines can serve (`check_request` refuses what the loaded
        checkpoint cannot)."""

    def needs(self, model_index: dict[str, Any]) -> dict[str, str]:
        """Library -> the oldest version the checkpoint (its `model_index.json`) needs, where one
        library generation lacks its classes: start-up then stops naming them. Most bind `needs_nothing`."""

    def load(self, source: str, class_name: str, device: torch.device, dtype: torch.dtype) -> LoadedPipelines:
        """t2v and/or i2v, sharing weights where the checkpoint allows (`from_pipe`), None for a
        mode the checkpoint cannot do."""

    def check_request(self, pipelines: LoadedPipelines, job: GenerationJob) -> list[str]:
        """Its own rules (raise `Refused`); returns notes on what it adjusts or ignores."""

    def request_defaults(self, pipelines: LoadedPipelines) -> dict[str, Any]:
        """The loaded checkpoint's own values for job fields a request leaves out (e.g. a distilled
        checkpoint's guidance and steps), in place of the schema's defaults. Most bind
        `no_request_defaults`."""

    def predicts_duration(self, pipelines: LoadedPipelines) -> bool:
        """Whether the checkpoint chooses a clip's length itself (`auto_duration`; LTX-2.5's duration
        head). Most bind `no_duration_prediction`."""

    def prompt_enhancer(self, pipelines: LoadedPipelines) -> PromptEnhancer | None:
        """What rewrites a job's prompt with the checkpoint's own enhancer (`enhance_prompt`), or None
        where it carries none. Most bind `no_prompt_enhancer`."""

    def frame_count(self, pipelines: LoadedPipelines, requested: int) -> FrameCount:
        """How many frames to generate for a request of `requested` (at least that many; the first
        `requested` are returned), and the rule in words. Most families bind `vae_frame_count`."""

    def generate(self, pipelines: LoadedPipelines, job: GenerationJob,
                 on_step: StepCallback) -> torch.Tensor | VideoWithAudio:
        """`(1, F, 3, H, W)` floats in [0, 1] (with the soundtrack where the family has one)."""


PromptEnhancer = Callable[[GenerationJob], str]
"""enhancer(job) -> the prompt to generate with (run under the model lock, before generating)"""


def needs_nothing(model_index: dict[str, Any]) -> dict[str, str]:
    """The default `needs`: both library generations serve the family's checkpoints."""
    return {}


def no_request_defaults(pipelines: LoadedPipelines) -> dict[str, Any]:
    """The default `request_defaults`: the schema's defaults hold."""
    return {}


def no_duration_prediction(pipelines: LoadedPipelines) -> bool:
    """The default `predicts_duration`: the request's `num_frames` is the length."""
    return False


def no_prompt_enhancer(pipelines: LoadedPipelines) -> PromptEnhancer | None:
    """The default `prompt_enhancer`: the family carries none."""
    return None


@dataclass(frozen=True)
class FrameCount:
    """The frames a family generates for a request, and why that many."""

    generated: int
    rule: str
    """the counts the family can make, in words for the answer's notes: "8k+1"."""


def causal_vae_frames(requested: int, ratio: int) -> FrameCount:
    """The smallest k * ratio + 1 >= requested: the counts a causal video VAE with temporal
    compression `ratio` decodes to."""
    return FrameCount(max(0, math.ceil((requested - 1) / ratio)) * ratio + 1, f"{ratio}k+1")


def vae_frame_count(pipelines: LoadedPipelines, requested: int) -> FrameCount:
    """The default `frame_count`: `causal_vae_frames` at the VAE's temporal compression (the LTX
    pipelines name it `vae_temporal_compression_ratio`, the others `vae_scale_factor_temporal`)."""
    pipe = pipelines.any
    ratio = getattr(pipe, "vae_scale_factor_temporal", None) or pipe.vae_temporal_compression_ratio
    return causal_vae_frames(requested, int(ratio))


def check_text_only_enhancement(job: GenerationJob, processor: str) -> None:
    """An enhancer loaded with its processor's tokenizer alone (`TextTokenizer`) cannot be shown the image."""
    if job.enhance_prompt and job.image is not None:
        raise CannotServe(f"enhance_prompt with an image shows the image to the prompt enhancer, which needs the "
                          f"{processor} processor's image half: enhance the prompt of a text-to-video request",
                          field="enhance_prompt")


def check_size_multiple(job: GenerationJob, multiple: int, model_name: str) -> None:
    """Height and width must be multiples of `multiple` (VAE ratio x patch size) for this model."""
    for name in ("height", "width"):
        if getattr(job, name) % multiple:
            raise Refused(f"{name} must be a multiple of {multiple} for {model_name}", field=name)


def encode_video(pipe: Any, job: GenerationJob) -> torch.Tensor:
    """The job's video (video-to-video) through `pipe`'s VAE: the mean of its posterior, no noise
    of its own, before any normalization a pipeline applies."""
    frames = pipe.video_processor.preprocess_video(list(job.video), job.height, job.width)
    with torch.no_grad():
        return pipe.vae.encode(frames.to(pipe._execution_device, dtype=pipe.vae.dtype)).latent_dist.mode()


OMIT: Any = object()
"""A family argument of this value removes that argument (a pipeline that does not take it)."""


def video_to_video_args(job: GenerationJob) -> dict[str, Any]:
    """What diffusers' video-to-video pipelines (Wan, CogVideoX) take instead of a frame count:
    the video, one frame per generated frame, and how much of it may change."""
    return {"video": list(job.video), "strength": job.strength, "num_frames": OMIT, "image": OMIT}


def run_pipeline(pipe: Any, job: GenerationJob, on_step: StepCallback, **family_args: Any) -> torch.Tensor:
    """Call a diffusers video pipeline for `job`: `(1, F, 3, H, W)` floats in [0, 1] on its device.
    `family_args` add to (or override) the arguments every video pipeline takes.

    Noise comes from a CPU generator, so a seed draws the same noise on every device."""
    return call_pipeline(pipe, job, on_step, **family_args).frames


def call_pipeline(pipe: Any, job: GenerationJob, on_step: StepCallback, **family_args: Any) -> Any:
    """As `run_pipeline`, but the pipeline's whole output (LTX-2's has `.audio` beside `.frames`)."""

    def step_end(pipe_: Any, step: int, _timestep: Any, callback_kwargs: dict) -> dict:
        # video-to-video runs only the last `strength` of the steps: the pipeline counts them
        on_step(step + 1, pipe_.num_timesteps if job.video else job.num_inference_steps)
        return callback_kwargs

    args = {**common_args(job), "height": job.height, "width": job.width, "guidance_scale": job.guidance_scale,
            "callback_on_step_end": step_end}
    args.update(family_args)  # a family may add, override or OMIT arguments
    return pipe(**{name: value for name, value in args.items() if value is not OMIT})


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
