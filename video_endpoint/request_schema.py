"""The request contract: every field, its type, its default and its bounds, in ONE place.

The defaults are exactly the API card's. Model families may only adjust a value to their own
rules (e.g. LTX-Video generates 8k+1 frames) and report it in diagnostics; they never change a
default. Per-format options (`"gif": {...}`, `"webm": {...}`) are declared by each encoder module
and collected here from the encoder registry, so a new format adds its options with its module.
`read_job_call` reads the other body shapes (a job submission, poll or cancel) before any of this.

Named `request_schema` (not `schema`): the Endpoint puts this repository first on `sys.path`,
where a top-level `schema.py` would hide the PyPI package of that name.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
)

from encoders.base import MAX_FPS, FormatOptions
from encoders.registry import FORMATS
from video_endpoint import settings
from video_endpoint.errors import InvalidRequest

if TYPE_CHECKING:
    OutputName = str  # a type checker sees a name; pydantic sees the registry's names
else:
    OutputName = Literal[tuple(FORMATS)]


def _default(name: str) -> int:
    return int(settings.BY_NAME[name].default)


@dataclass(frozen=True)
class Limits:
    """Upper bounds that protect the server, read from the environment at start-up; each field's
    variable and default are in `video_endpoint.settings` (ENV below maps one to the other)."""

    max_frames: int = _default("VIDEO_MAX_FRAMES")
    """most frames one request may ask for"""
    max_pixels: int = _default("VIDEO_MAX_PIXELS")
    """most height x width of one frame"""
    max_video_pixels: int = _default("VIDEO_MAX_VIDEO_PIXELS")
    """most num_frames x height x width (the decoded video's size)"""
    max_steps: int = _default("VIDEO_MAX_STEPS")
    """most denoising steps"""
    max_prompt_chars: int = _default("VIDEO_MAX_PROMPT_CHARS")
    """longest prompt or negative prompt (the text encoder truncates far earlier; this only bounds
    the work spent on garbage)"""
    max_image_bytes: int = _default("VIDEO_MAX_IMAGE_BYTES")
    """largest decoded input image file"""
    max_image_pixels: int = _default("VIDEO_MAX_IMAGE_PIXELS")
    """largest input image (width x height, read from its header)"""

    max_video_bytes: int = _default("VIDEO_MAX_INPUT_VIDEO_BYTES")
    """largest decoded input video file"""
    max_video_frame_pixels: int = _default("VIDEO_MAX_INPUT_VIDEO_PIXELS")
    """largest input video frame (its header's width x height)"""
    max_video_seconds: int = _default("VIDEO_MAX_INPUT_VIDEO_S")
    """longest input video (its header's duration)"""
    max_video_frames: int = _default("VIDEO_MAX_INPUT_VIDEO_FRAMES")
    """most frames of an input video (duration x frame rate)"""
    max_video_pixel_rate: int = _default("VIDEO_MAX_INPUT_PIXEL_RATE")
    """most pixels per second of an input video"""
    max_video_decode_pixels: int = _default("VIDEO_MAX_INPUT_DECODE_PIXELS")
    """most source pixels decoded for one input video (frames decoded x width x height)"""
    video_decode_timeout_s: int = _default("VIDEO_INPUT_DECODE_TIMEOUT_S")
    """seconds the ffmpeg process reading an input video may run"""

    ENV: ClassVar[dict[str, str]] = {
        "max_frames": "VIDEO_MAX_FRAMES",
        "max_pixels": "VIDEO_MAX_PIXELS",
        "max_video_pixels": "VIDEO_MAX_VIDEO_PIXELS",
        "max_steps": "VIDEO_MAX_STEPS",
        "max_prompt_chars": "VIDEO_MAX_PROMPT_CHARS",
        "max_image_bytes": "VIDEO_MAX_IMAGE_BYTES",
        "max_image_pixels": "VIDEO_MAX_IMAGE_PIXELS",
        "max_video_bytes": "VIDEO_MAX_INPUT_VIDEO_BYTES",
        "max_video_frame_pixels": "VIDEO_MAX_INPUT_VIDEO_PIXELS",
        "max_video_seconds": "VIDEO_MAX_INPUT_VIDEO_S",
        "max_video_frames": "VIDEO_MAX_INPUT_VIDEO_FRAMES",
        "max_video_pixel_rate": "VIDEO_MAX_INPUT_PIXEL_RATE",
        "max_video_decode_pixels": "VIDEO_MAX_INPUT_DECODE_PIXELS",
        "video_decode_timeout_s": "VIDEO_INPUT_DECODE_TIMEOUT_S",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        return cls(**{field: settings.read_int(name, environ) for field, name in cls.ENV.items()})


MAX_LORAS = 4  # adapters one request may combine


class LoraChoice(BaseModel):
    """One adapter of those the server lists (`/health`: `model.loras`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(..., min_length=1, max_length=64, description="The adapter's name as `/health` lists it.")
    scale: float = Field(1.0, ge=-2, le=2, allow_inf_nan=False,
                         description="How strongly it applies: 0 = not at all, 1 = as trained.")


MAX_KEYFRAMES = 8  # images one request may place
V2V_STRENGTH = 0.6  # video-to-video: how much may change when the request does not say


class KeyframeChoice(BaseModel):
    """An image placed at one frame of the output."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image: str = Field(..., description="Base64-encoded image (or a data: URL).")
    frame: int = Field(..., ge=0, description="Index of the output frame it is (0 = the first).")
    strength: float = Field(1.0, ge=0, le=1, allow_inf_nan=False,
                            description="How closely that frame follows the image: 1 = exactly.")


class RequestFields(BaseModel):
    """The fields of `inputs` the API card names. Strict types: `"32"` is not a number, `true` is not an
    int. `VideoRequest` adds one options object per output format; code types a request as this
    class, whose fields a type checker sees (format options are read with `format_options`)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)
    _image_field: str = PrivateAttr("image")

    @property
    def image_field(self) -> str:
        """Where the client put `image`: `image`, or `inputs` in the Hugging Face task shape."""
        return self._image_field

    prompt: str = Field(..., description="What to generate, or how the input image should move.")
    image: str | None = Field(
        None, description="Base64-encoded input image (or a data: URL); present = image-to-video.")
    negative_prompt: str = Field("", description="What to avoid.")
    num_frames: int = Field(32, ge=1, description="Frames returned: exactly this many.")
    fps: int = Field(12, ge=1, le=MAX_FPS, description="Playback rate of the returned video.")
    height: int = Field(512, ge=32, multiple_of=32, description="Frame height in pixels; divisible by 32.")
    width: int = Field(512, ge=32, multiple_of=32, description="Frame width in pixels; divisible by 32.")
    seed: int | None = Field(
        None, ge=0, le=2**63 - 1,
        description="Random seed; same seed + same request = same frames. Drawn and returned when absent.")
    num_inference_steps: int = Field(30, ge=1, description="Denoising steps: more = better, slower.")
    guidance_scale: float = Field(7.5, ge=0, le=100, allow_inf_nan=False,
                                  description="How strictly to follow the prompt.")
    outputs: list[OutputName] = Field(
        ["gif"], min_length=1, max_length=len(FORMATS), description=f"Output formats, any of: {', '.join(FORMATS)}.")
    loras: list[LoraChoice] = Field(
        [], max_length=MAX_LORAS,
        description=f"LoRA adapters to apply, at most {MAX_LORAS}: `[{{\"name\": ..., \"scale\": 1.0}}]`, "
                    "names from `/health`; none = the model's own weights.")
    return_base64: bool = Field(
        True, description="Outputs as base64 strings (`<format>_base64`); false = raw bytes (Python callers).")
    upload: dict[OutputName, Annotated[str, Field(max_length=2000)]] | None = Field(
        None, description="Per output, a presigned PUT URL to upload it to (`{\"mp4\": \"https://...\"}`): the answer "
                          "says where it went instead of carrying it; hosts the server allows (VIDEO_UPLOAD_HOSTS).")
    last_image: str | None = Field(
        None, description="Base64 image the video ends on; with `image`, a first-and-last-frame video.")
    keyframes: list[KeyframeChoice] = Field(
        [], max_length=MAX_KEYFRAMES,
        description=f"Images at output frames, at most {MAX_KEYFRAMES}: "
                    "`[{\"image\": ..., \"frame\": 16, \"strength\": 1.0}]`.")
    video: str | None = Field(
        None, description="Base64 video (MP4: H.264/HEVC/AV1/VP9/MPEG-4; WebM: VP8/VP9/AV1; GIF) to transform: "
                          "video-to-video, its first `num_frames` frames at `fps`.")
    strength: float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False,
        description=f"With `video`: how much may change, 0 = nothing, 1 = all; null = {V2V_STRENGTH}.")
    extend: str | None = Field(
        None, description="Base64 video to continue (formats as `video`): the answer's `num_frames` frames follow "
                          "its last frame.")
    return_extended: bool = Field(
        False, description="With `extend`: the answer is the whole extended video, its own frames (at `fps`) then "
                           "the `num_frames` new ones; at most VIDEO_MAX_FRAMES together.")
    auto_duration: bool = Field(
        False, description="Let the model choose the clip's length (checkpoints with a duration head: LTX-2.5; "
                           "`/health` `model.auto_duration`), at most `num_frames` frames; the frames made are "
                           "`diagnostics.num_frames`.")
    enhance_prompt: bool = Field(
        False, description="Rewrite the prompt with the model's own prompt enhancer before generating (models that "
                           "carry one: `/health` `model.prompt_enhancer`); the prompt used is returned in "
                           "`diagnostics.enhanced_prompt`.")

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("prompt must not be empty")
        return prompt

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _encodable_text(cls, text: str) -> str:
        # JSON may carry a lone surrogate (\\ud800); no tokenizer can encode it
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("must be Unicode text (it holds a lone surrogate)") from None
        return text

    @field_validator("outputs")
    @classmethod
    def _outputs_unique(cls, outputs: list[str]) -> list[str]:
        if len(set(outputs)) != len(outputs):  # at most len(FORMATS) items by now
            repeated = sorted({name for name in outputs if outputs.count(name) > 1})
            raise ValueError(f"outputs lists {', '.join(repeated)} more than once")
        return outputs


VideoRequest = cast(type[RequestFields], create_model(  # type: ignore[call-overload]
    "VideoRequest",
    __base__=RequestFields,
    __doc__="A validated request: the card's fields plus one options object per output format.",
    **{name: (module.Options | None, Field(None, description=module.Options.__doc__))
       for name, module in FORMATS.items()},
))


def format_options(request: RequestFields, name: str) -> FormatOptions:
    """The options for output `name`: what the request gave, else that format's defaults."""
    options: FormatOptions | None = getattr(request, name)
    return options or FORMATS[name].Options()


def output_fps(request: RequestFields, name: str) -> int:
    return format_options(request, name).fps or request.fps


# ---------------------------------------------------------------------------------------------
# Parsing: request body -> VideoRequest, or InvalidRequest naming the field


def parse_payload(data: Any, limits: Limits) -> RequestFields:
    """Validate a request body (`{"inputs": {...}}` or `{"inputs": "<prompt>", "parameters": {...}}`)."""
    fields = _inputs_of(data)
    try:
        request = VideoRequest.model_validate(fields)
    except ValidationError as exc:
        raise _invalid_from(exc) from None
    if isinstance(data.get("inputs"), str) and request.image is not None:  # the task shape's image is `inputs`
        request._image_field = "inputs"
    check_limits(request, limits)
    check_conditioning(request)
    return request


def check_conditioning(request: RequestFields) -> None:
    """Which conditioning fields go together, and keyframes inside the clip, one image a frame."""
    if request.video is not None:
        given = [name for name in ("image", "last_image", "extend") if getattr(request, name) is not None]
        given += ["keyframes"] if request.keyframes else []
        if given:
            raise InvalidRequest(f"video (video-to-video) cannot be combined with {given[0]}", field=given[0])
    elif request.strength is not None:
        raise InvalidRequest("strength is for video-to-video: send it with video", field="strength")
    if request.return_extended and request.extend is None:
        raise InvalidRequest("return_extended is for extend: send the video to continue in extend",
                             field="return_extended")
    if request.extend is not None:
        given = [name for name in ("image", "last_image") if getattr(request, name) is not None]
        given += ["keyframes"] if request.keyframes else []
        if given:
            raise InvalidRequest(f"extend continues a video from its last frames: it takes no {given[0]}",
                                 field=given[0])
    taken: set[int] = {0} if request.image is not None else set()
    if request.last_image is not None:
        taken.add(request.num_frames - 1)
    for index, keyframe in enumerate(request.keyframes):
        field = f"keyframes.{index}.frame"
        if keyframe.frame >= request.num_frames:
            raise InvalidRequest(f"frame must be below num_frames ({request.num_frames})", field=field)
        if keyframe.frame in taken:
            raise InvalidRequest(f"frame {keyframe.frame} already has an image (image is frame 0, last_image "
                                 "the last frame, each keyframe its own)", field=field)
        taken.add(keyframe.frame)


def _inputs_of(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object with an 'inputs' key", field=None)
    if "inputs" not in data:
        raise InvalidRequest("'inputs' is required: {\"inputs\": {\"prompt\": ...}}", field="inputs")
    inputs, parameters = data["inputs"], data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise InvalidRequest("parameters must be an object", field="parameters")
    if isinstance(inputs, str):  # the Hugging Face task shapes: text-to-video, or image-to-video
        parameters = _task_parameters(parameters)
        if looks_like_image(inputs):
            if "prompt" not in parameters:
                raise InvalidRequest("inputs holds an image (image-to-video): put the prompt in parameters.prompt",
                                     field="parameters.prompt")
            inputs = {"image": inputs}
        else:
            inputs = {"prompt": inputs}
    elif not isinstance(inputs, dict):
        raise InvalidRequest("inputs must be an object (or the prompt as a string)", field="inputs")
    both = sorted(set(inputs) & set(parameters))
    if both:
        raise InvalidRequest(f"'{shown_name(both[0])}' is given in both inputs and parameters; give it once",
                             field=_field_path((both[0],)))
    return {**parameters, **inputs}


# The first bytes of the image formats an input image may be, as base64 text begins with them
_IMAGE_BASE64_STARTS = ("iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR", "Qk", "SUkq", "TU0A")


def looks_like_image(text: str) -> bool:
    """Whether a string `inputs` is an image (base64 or a data: URL) rather than a prompt: a prompt
    is never read from an image's text."""
    head = text[:200].lstrip()
    if head[:11].lower() == "data:image/":
        return True
    return len(text) >= 64 and re.fullmatch(r"[A-Za-z0-9+/=_\-\s]*", head) is not None and head.startswith(
        _IMAGE_BASE64_STARTS)


def _task_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The task specs' parameter types where they differ from this API's: `target_size` is
    width and height, `negative_prompt` may be a list of strings (joined with ", "), `num_frames`
    a number (an integral one is taken)."""
    parameters = dict(parameters)
    if "target_size" in parameters:
        size = parameters.pop("target_size")
        if not isinstance(size, dict) or set(size) - {"width", "height"}:
            raise InvalidRequest("target_size must be {\"width\": int, \"height\": int}",
                                 field="parameters.target_size")
        given = sorted(set(size) & set(parameters))
        if given:
            raise InvalidRequest(f"{given[0]} is given in target_size and on its own; give it once",
                                 field="parameters.target_size")
        parameters.update(size)
    negative = parameters.get("negative_prompt")
    if isinstance(negative, list):
        if not all(isinstance(text, str) for text in negative) or len(negative) > 64:
            raise InvalidRequest("negative_prompt must be a string or a list of at most 64 strings",
                                 field="negative_prompt")
        parameters["negative_prompt"] = ", ".join(text for text in negative if text.strip())
    frames = parameters.get("num_frames")
    if isinstance(frames, float) and frames.is_integer():
        parameters["num_frames"] = int(frames)
    return parameters


# Error answers quote what the client sent only as names, cut short and reduced to plain characters,
# and list a bounded number of problems: a bad request never gets a large or a marked-up answer.
_SHOWN_NAME_CHARS = 40
_MAX_DETAILS = 10


def shown_name(name: object) -> str:
    """A client-sent name as error answers show it: 40 characters at most, anything but letters,
    digits and `_.-` as `?` (an empty key shows as "")."""
    text = str(name)
    if not text:
        return '""'
    shown = re.sub(r"[^A-Za-z0-9_.\-]", "?", text[:_SHOWN_NAME_CHARS])
    return shown + ("..." if len(text) > _SHOWN_NAME_CHARS else "")


def _field_path(loc: tuple[Any, ...]) -> str | None:
    """Dotted names; a list index stays where a name follows it (`loras.0.scale`), not at the end
    (`outputs`: the message says which item)."""
    names = [shown_name(part) for i, part in enumerate(loc)
             if (not isinstance(part, int) or i < len(loc) - 1) and part != "[key]"]  # a dict key's own error
    return ".".join(names) or None


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    """The valid keys of the object that holds `loc[-1]` (for 'did you mean')."""
    if len(loc) == 1:
        return list(VideoRequest.model_fields)
    if len(loc) == 2 and loc[0] in FORMATS:
        return list(FORMATS[loc[0]].Options.model_fields)
    return []


def _invalid_from(exc: ValidationError) -> InvalidRequest:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    for error in errors[:_MAX_DETAILS]:
        # pydantic's own words, less the count it quotes back ("... at most 4 items, not 100000")
        error["msg"] = re.sub(r", not \d+$", "", error["msg"].removeprefix("Value error, "))
    first = errors[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _known_fields(loc), n=1, cutoff=0.6) if len(key) < 64 else []
        message = f"unknown field '{shown_name(key)}'" + (f"; did you mean '{close[0]}'?" if close else "")
    else:
        message = first["msg"]
        index = next((part for part in loc if isinstance(part, int)), None)
        if index is not None:
            message = f"item {index}: {message}"
    details = [{"field": _field_path(tuple(e["loc"])), "type": e["type"], "message": e["msg"]}
               for e in errors[:_MAX_DETAILS]]
    if len(errors) > _MAX_DETAILS:
        details.append({"field": None, "type": "more", "message": f"{len(errors) - _MAX_DETAILS} more not listed"})
    return InvalidRequest(message, field=_field_path(loc), details=details)


def check_limits(request: RequestFields, limits: Limits) -> None:
    """The configured upper bounds, and each output format's own rules. Messages name the bound,
    never the request's own value (it may be an integer of thousands of digits)."""
    bounded = [
        ("num_frames", request.num_frames, limits.max_frames, "VIDEO_MAX_FRAMES"),
        ("num_inference_steps", request.num_inference_steps, limits.max_steps, "VIDEO_MAX_STEPS"),
        ("prompt", len(request.prompt), limits.max_prompt_chars, "VIDEO_MAX_PROMPT_CHARS"),
        ("negative_prompt", len(request.negative_prompt), limits.max_prompt_chars,
         "VIDEO_MAX_PROMPT_CHARS"),
    ]
    for field, value, bound, setting in bounded:
        if value > bound:
            unit = " characters" if "prompt" in field else ""
            raise InvalidRequest(f"{field} must be at most {bound}{unit} on this server (setting {setting})",
                                 field=field)
    if request.height * request.width > limits.max_pixels:
        raise InvalidRequest(
            f"height x width must be at most {limits.max_pixels} pixels on this server (setting "
            "VIDEO_MAX_PIXELS)", field="height")
    if request.num_frames * request.height * request.width > limits.max_video_pixels:
        raise InvalidRequest(
            f"num_frames x height x width must be at most {limits.max_video_pixels} on this server (setting "
            "VIDEO_MAX_VIDEO_PIXELS): ask for fewer frames or a smaller size", field="num_frames")
    for name in request.outputs:
        fps, max_fps = output_fps(request, name), FORMATS[name].MAX_FPS
        if fps > max_fps:
            raise InvalidRequest(f"{name} plays at most {max_fps} fps; set {name}.fps to {max_fps} or less",
                                 field=f"{name}.fps")


# ---------------------------------------------------------------------------------------------
# Form bodies (multipart/form-data, as the OpenAI SDK sends its extra fields): every value a
# string, nested ones in bracket notation

MAX_FORM_DEPTH = 4


def read_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form fields as one object: `a[]` items of a list, `a[b]` keys of an object, `a[][b]` keys
    of objects in a list (a key seen already in the last object starts the next one), as the
    OpenAI SDK writes them (`loras[][name]`, `loras[][scale]`). Values stay strings."""
    values: dict[str, Any] = {}
    for key, value in pairs:
        name, _, rest = key.partition("[")
        path = [name, *re.findall(r"([^\[\]]*)\]", "[" + rest)] if rest else [name]
        if not name or len(path) > MAX_FORM_DEPTH or (rest and "[" + rest != "".join(f"[{p}]" for p in path[1:])):
            raise InvalidRequest("a form field name must be a name, or name[] / name[key] / name[][key]",
                                 field=shown_name(key))
        _put(values, path, value, key)
    return values


def _put(container: Any, path: list[str], value: str, key: str) -> None:
    part, rest = path[0], path[1:]
    clash = InvalidRequest("this form field is given both as a value and as a list or object", field=shown_name(key))
    if isinstance(container, list):  # part == "": an item; with `rest`, a key of the last object
        if not rest:
            container.append(value)
            return
        if not container or not isinstance(container[-1], dict) or rest[0] in container[-1]:
            container.append({})
        container = container[-1]
        part, rest = rest[0], rest[1:]
    if not isinstance(container, dict) or part == "":
        raise clash
    if not rest:
        if part in container:
            raise InvalidRequest("this form field is given twice", field=shown_name(key))
        container[part] = value
        return
    child = container.setdefault(part, [] if rest[0] == "" else {})
    if not isinstance(child, list if rest[0] == "" else dict):
        raise clash
    _put(child, rest, value, key)


@functools.cache
def _field_adapter(name: str) -> TypeAdapter[Any]:
    info = VideoRequest.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]


def typed_form_fields(values: dict[str, Any]) -> dict[str, Any]:
    """A form's values as the request's fields' types, read from their text for this kind of body
    only: `"8"` is 8 for an int, `"true"` true, `"0.5"` a float; `"2.5"` for an int is refused
    naming the field. Names the request does not have are left for its validation to refuse."""
    typed = {}
    for name, value in values.items():
        if name not in VideoRequest.model_fields:
            typed[name] = value
            continue
        adapter = _field_adapter(name)
        try:
            typed[name] = adapter.dump_python(adapter.validate_python(value, strict=False), mode="json")
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            loc = (name, *errors[0]["loc"])
            raise InvalidRequest(f"{errors[0]['msg']} (a form value is text: it must read as the field's type)",
                                 field=_field_path(loc)) from None
    return typed


# ---------------------------------------------------------------------------------------------
# The body shapes: a generation, a job submission, a job poll or cancel (`video_endpoint.jobs`)

JOB_KEYS = ("async", "webhook", "idempotency_key", "job_id", "cancel")  # the job protocol's keys in `inputs`


@dataclass(frozen=True)
class JobCall:
    """What a body asks of the job protocol; `generate` is a plain synchronous request."""

    kind: Literal["generate", "submit", "poll", "cancel"]
    data: Any = None
    """generate / submit: the body with the job keys taken out (what the model is asked)"""
    job_id: Any = None
    webhook: str | None = None
    idempotency_key: Any = None
    """submit: a resubmission with the same key answers the same job"""
    request_id: str | None = None
    """submit: the submitting request's id (the local server's X-Request-Id), kept with the job"""


def read_job_call(data: Any, idempotency_key: str | None = None) -> JobCall:
    """Route a body by its job keys (`idempotency_key`: the `Idempotency-Key` header, where the
    body has no key of its own); raises InvalidRequest for a mistake in them."""
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, dict) or not any(key in inputs for key in JOB_KEYS):
        if idempotency_key is not None:
            raise InvalidRequest("an Idempotency-Key is for jobs: add \"async\": true", field="idempotency_key")
        return JobCall("generate", data)
    if "job_id" in inputs:
        extra = sorted(set(inputs) - {"job_id", "cancel"}, key=str)
        if extra:
            raise InvalidRequest("a job poll takes only job_id (and cancel)", field=shown_name(extra[0]))
        cancel = inputs.get("cancel", False)
        if not isinstance(cancel, bool):
            raise InvalidRequest("cancel must be true or false", field="cancel")
        return JobCall("cancel" if cancel else "poll", job_id=inputs["job_id"])
    run_async, webhook = inputs.get("async", False), inputs.get("webhook")
    key = inputs.get("idempotency_key", idempotency_key)
    if not isinstance(run_async, bool):
        raise InvalidRequest("async must be true or false", field="async")
    if "cancel" in inputs:
        raise InvalidRequest("cancel needs the job_id of the job to stop", field="cancel")
    if webhook is not None and not run_async:
        raise InvalidRequest("a webhook is sent when a job ends: add \"async\": true", field="webhook")
    if key is not None and not run_async:
        raise InvalidRequest("an idempotency_key is for jobs: add \"async\": true", field="idempotency_key")
    request = {**data, "inputs": {k: v for k, v in inputs.items() if k not in ("async", "webhook", "idempotency_key")}}
    return JobCall("submit" if run_async else "generate", request, webhook=webhook, idempotency_key=key)


def read_job_submission(data: Any, idempotency_key: str | None = None) -> JobCall:
    """`POST /jobs`'s body: `{"inputs": {...a request...}}` (or the task shape's prompt), always a job;
    raises InvalidRequest."""
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict | str):
        raise InvalidRequest("the body must be {\"inputs\": {...a request...}}", field="inputs")
    inputs = data["inputs"] if isinstance(data["inputs"], dict) else {"prompt": data["inputs"]}
    return read_job_call({**data, "inputs": {**inputs, "async": True}}, idempotency_key)


MIME_FORMATS = {FORMATS[name].MIME: name for name in FORMATS}


def _media_range(part: str) -> tuple[str, float]:
    """One item of an Accept header: its media type, lower case, and its q-value (0 = not wanted)."""
    media, *params = (piece.strip() for piece in part.split(";"))
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0  # not a q-value a client meant: as if not sent
    return media.lower(), quality


def raw_file_body(data: Any, accept: str) -> Any:
    """The body asking for the file itself as the answer when the client wants that: `Accept`
    naming one format's type (`video/mp4`, ...: that format alone), or the Hugging Face task shape
    (`"inputs": "<prompt or image>"`) without `Accept: application/json` (its one output). Otherwise
    the body as it came (a JSON answer)."""
    accepted = [media for media, quality in map(_media_range, accept.split(",")) if quality > 0]
    wanted = next((MIME_FORMATS[kind] for kind in accepted if kind in MIME_FORMATS), None)
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict | str):
        return data
    task_shape = isinstance(data["inputs"], str)
    if wanted is None and (not task_shape or "application/json" in accepted):
        return data
    fields = data["inputs"] if not task_shape else data.get("parameters") or {}
    if not isinstance(fields, dict):
        return data  # the schema names the problem
    if wanted is not None and fields.get("outputs", [wanted]) != [wanted]:
        raise InvalidRequest(f"Accept: {FORMATS[wanted].MIME} answers that file alone: outputs must be "
                             f"[\"{wanted}\"] or absent", field="outputs")
    if fields.get("return_base64") is True:
        raise InvalidRequest("this request is answered with the file itself (Accept, or the task shape): "
                             "return_base64 must be false or absent", field="return_base64")
    raw = {**fields, "return_base64": False, **({"outputs": [wanted]} if wanted else {})}
    return {**data, "inputs": raw} if not task_shape else {**data, "parameters": raw}


def markdown_table() -> str:
    """The README's API table, generated from the fields above (`python -m video_endpoint.request_schema`)."""
    json_types = {"string": "string", "integer": "int", "number": "float", "boolean": "bool", "array": "array"}
    properties = VideoRequest.model_json_schema()["properties"]
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, info in VideoRequest.model_fields.items():
        if name in FORMATS:
            continue
        schema = properties[name]
        kinds = [s.get("type") for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        kind = json_types.get(kinds[0], kinds[0]) if kinds else "object"
        default = "required" if info.is_required() else (
            "null" if info.default is None else f"`{json.dumps(info.default)}`")
        rows.append(f"| `{name}` | {kind} | {default} | {info.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
