"""Every environment variable the handler, the server and the CLI read, in ONE place: its name,
its default and what it means. Everything else asks this module for a value (`read`, `read_int`,
`read_flag`, `read_float`), so a misspelt name fails at once, and README's configuration tables
are generated from here (`python -m video_endpoint.settings`; a test keeps them equal).

Values are read when the handler or the server starts, never per request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from pipelines.base import SpeedSettings


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    """The value when unset, as it would be written in the environment ("" = unset)."""
    doc: str
    section: str
    """Which README table lists it: model, limits, gpu, server or jobs."""
    shown_default: str | None = None
    """The default as README shows it, where it depends on the machine."""


SETTINGS: tuple[Setting, ...] = (
    Setting("VIDEO_MODEL_ID", "Lightricks/LTX-Video", "the model when the repository directory holds no "
            "`model_index.json`: a Hub id, a local diffusers directory, or `tiny` (the random-weight test model; "
            "the CLI's default)", "model"),
    Setting("VIDEO_MODEL_FAMILY", "", "force a family by its name in [Model families](families.md#model-families) "
            "for a checkpoint whose `_class_name` is not listed", "model", shown_default="(from `_class_name`)"),
    Setting("VIDEO_LORAS", "", "LoRA adapters besides those in `<model dir>/loras/*.safetensors`: "
            "`name=<Hub id or path>,...` (safetensors only); loaded at start-up, chosen per request "
            "(see [LoRA adapters](families.md#lora-adapters))", "model", shown_default="(none)"),
    Setting("HF_TOKEN", "", "the CLI client's token for `--url` when neither `--token-file` nor `--token` is given "
            "(huggingface_hub reads it too, for downloads)", "jobs", shown_default="(unset)"),
    Setting("VIDEO_JOB_TTL_S", "3600", "seconds a finished job's answer is kept for polling (see "
            "[Jobs](api.md#jobs-submit-poll-cancel))", "jobs"),
    Setting("VIDEO_JOB_MAX_BYTES", "1073741824", "the kept jobs' outputs together, at most (bytes); the oldest "
            "finished job goes first", "jobs"),
    Setting("VIDEO_MAX_KEPT_JOBS", "1000", "finished jobs kept at most, however small (cancelled ones too); the "
            "oldest goes first", "jobs"),
    Setting("VIDEO_MAX_QUEUED", "16", "jobs that may wait behind the running one; more answer `busy`", "jobs"),
    Setting("VIDEO_JOB_MAX_INPUT_BYTES", "2147483648", "memory the waiting jobs' decoded inputs (input video "
            "frames, images) may take together; a job that would pass it answers `busy`", "jobs"),
    Setting("VIDEO_JOB_STORE", "", "where jobs are kept: unset = this process's memory (lost on restart, seen by "
            "this replica only), or `redis://[:password@]host:port/db` (`rediss://` for TLS) shared by every "
            "replica (see [Replicas](operations.md#replicas))", "jobs", shown_default="(unset: in memory)"),
    Setting("VIDEO_JOB_LEASE_S", "30", "with a Redis store: a running job whose replica has not been heard from "
            "this long (it heartbeats every third of it) runs again on another replica, with the same seed", "jobs"),
    Setting("VIDEO_JOB_MAX_ATTEMPTS", "3", "with a Redis store: runs of one job at most (a replica that dies "
            "running it uses one); then it ends `failed`", "jobs"),
    Setting("VIDEO_SHUTDOWN_GRACE_S", "10", "on SIGTERM, a running job that will end within this many seconds is "
            "finished; a longer one is handed back to the queue at once", "jobs"),
    Setting("VIDEO_WEBHOOK_HOSTS", "", "hosts a job's `webhook` may name: `host` (its scheme's default port, "
            "443 or 80) or `host:port`; any other is refused", "jobs", shown_default="(none: webhooks off)"),
    Setting("VIDEO_UPLOAD_HOSTS", "", "hosts a request's `upload` URLs may name: `host` (its scheme's default "
            "port, 443 or 80) or `host:port` (e.g. `my-bucket.s3.eu-west-1.amazonaws.com`); any other is "
            "refused before generating", "jobs",
            shown_default="(none: uploads off)"),
    Setting("VIDEO_WEBHOOK_SECRET", "", "key of the webhook's HMAC-SHA256 signature (headers "
            "`X-Video-Timestamp` and `X-Video-Signature: sha256=<hex>`); webhooks are off without it", "jobs",
            shown_default="(none: webhooks off)"),
    Setting("VIDEO_TINY_MODEL_DIR", "", "where `tiny` is built and cached (other tiny ids in folders beside it, "
            "`<dir>-tiny-wan` …)", "model", shown_default="`~/.cache/video-endpoint/tiny-v4`"),
    Setting("XDG_CACHE_HOME", "", "the cache root under which `tiny` models are built, in "
            "`video-endpoint/` (the freedesktop variable; Hub downloads follow `HF_HOME` instead)", "model",
            shown_default="`~/.cache`"),
    Setting("VIDEO_LOG_PAYLOADS", "0", "`1`: let hf-serve log each request's payload (prompt, base64 image) as it "
            "does by default, and put the prompt in each finished request's log line; `0`: hf-serve's `Received "
            "request with:` line keeps the request id and the payload's length only, and no line has a prompt",
            "model"),
    Setting("VIDEO_LOG_FORMAT", "text", "`text`: readable log lines; `json`: one JSON object per line (time, level, "
            "request and job id, replica, event; a finished request's mode, family, size, frames, steps, timings "
            "and outcome; see [Monitoring](operations.md#monitoring))", "model"),
    Setting("VIDEO_MAX_FRAMES", "257", "most `num_frames` per request", "limits"),
    Setting("VIDEO_MAX_PIXELS", "1048576", "most height × width", "limits"),
    Setting("VIDEO_MAX_VIDEO_PIXELS", "160000000", "most `num_frames` × height × width", "limits"),
    Setting("VIDEO_MAX_STEPS", "100", "most `num_inference_steps`", "limits"),
    Setting("VIDEO_MAX_PROMPT_CHARS", "4000", "longest prompt / negative prompt", "limits"),
    Setting("VIDEO_MAX_IMAGE_BYTES", "20971520", "largest input image file (checked on the base64 length before "
            "decoding)", "limits"),
    Setting("VIDEO_MAX_IMAGE_PIXELS", "40000000", "most pixels of a request's input images together (`image`, "
            "`last_image`, `keyframes`), read from their headers before any pixel is decoded", "limits"),
    Setting("VIDEO_MAX_INPUT_VIDEO_BYTES", "20971520", "largest input video file (`video`, `extend`), checked on "
            "the base64 length before decoding; its base64 must also fit the server's body limit", "limits"),
    Setting("VIDEO_MAX_INPUT_VIDEO_PIXELS", "8294400", "largest input video frame (width x height, from its "
            "header; 3840x2160)", "limits"),
    Setting("VIDEO_MAX_INPUT_VIDEO_S", "60", "longest input video (seconds, from its packets' timestamps)",
            "limits"),
    Setting("VIDEO_MAX_INPUT_VIDEO_FRAMES", "3600", "most frames in an input video (its packets, counted)",
            "limits"),
    Setting("VIDEO_MAX_INPUT_PIXEL_RATE", "497664000", "most pixels per second of an input video (width x height "
            "x frame rate, from its packets; 3840x2160 at 60 fps)", "limits"),
    Setting("VIDEO_MAX_INPUT_DECODE_PIXELS", "4000000000", "most source pixels decoded for one input video "
            "(frames x width x height; `video` decodes the frames it uses, `extend` the whole clip; 4e9: 8 s of "
            "3840x2160 at 60 fps, 60 s of 1920x1080 at 30 fps)", "limits"),
    Setting("VIDEO_INPUT_DECODE_TIMEOUT_S", "20", "seconds the ffmpeg process that reads an input video may take "
            "(it runs apart from the server, memory-capped)", "limits"),
    Setting("VIDEO_COMPILE", "", "regional compilation of the transformer's repeated blocks", "gpu",
            shown_default="`1` on CUDA, `0` elsewhere"),
    Setting("VIDEO_WARMUP", "", "the four warm-up requests at start-up (2 steps each)", "gpu",
            shown_default="as `VIDEO_COMPILE`"),
    Setting("VIDEO_STEP_CACHE", "", "first-block cache threshold (e.g. `0.05`): skips the transformer's later "
            "blocks on steps whose first block barely changed; faster, lower quality. Its cost is measured by "
            "`benchmarks/gpu_pipeline.py` (PSNR/SSIM against the uncached frames, same seed), so far on random "
            "weights only, which says nothing of a real model's quality. On an H200 at 512×512×32 it was no "
            "reliable speed-up there: LTX-2B 0.46-1.35× denoise (two runs, thresholds 0.05 and 0.1, 46.7-47.6 "
            "dB), Wan-1.3B 1.00× (no step skipped); see docs/benchmarks.md", "gpu",
            shown_default="off"),
    Setting("VIDEO_CPU_OFFLOAD", "0", "`1`: weights stay in CPU memory, each model moves to the GPU while it runs "
            "(small GPUs; much slower)", "gpu"),
    Setting("VIDEO_VAE_TILING", "auto", "`auto`: decode in tiles when the request would not fit (below); `1` / `0`: "
            "always / never", "gpu"),
    Setting("VIDEO_STREAM_ENCODE", "", "`1`: where the VAE decodes a few frames at a time (Wan, CogVideoX), hand "
            "each run of frames to the formats that stream (WebM, MP4, ZIP) while it decodes the next; `0`: encode "
            "once every frame is decoded. Same bytes either way", "gpu",
            shown_default="`1` on CUDA, `0` elsewhere (on a CPU the VAE takes the cores the encoders would use)"),
    Setting("VIDEO_ENCODE_THREADS", "", "cores the encoders may use together (threads, ffmpeg's `-threads`, the "
            "GIF's worker processes), shared between the formats of an answer by their work; answers encoding at "
            "once share them too (a later one gets what the earlier left, at least one)", "gpu",
            shown_default="the cores this process may run on (CPU affinity, container CPU quota)"),
    Setting("VIDEO_API_TOKEN", "", "bearer token every request must carry (`--token` overrides it); unset = no "
            "auth, and the server listens on 127.0.0.1 only", "server", shown_default="(none)"),
    Setting("VIDEO_METRICS_PUBLIC", "0", "`1`: `GET /metrics` answers without the token (for a scraper inside a "
            "private network); `0`: it needs the token like the API", "server"),
    Setting("VIDEO_QUEUE_DEPTH", "4", "requests that may wait behind the running one (`--queue-depth`); more get "
            "503", "server"),
    Setting("VIDEO_BODY_TIMEOUT_S", "60", "seconds a request body may take to arrive; a slower one gets 408",
            "server"),
    Setting("VIDEO_HEADER_TIMEOUT_S", "10", "seconds a connection may take to send a request's headers (also "
            "between requests on a kept-alive connection); a slower one is closed", "server"),
    Setting("VIDEO_MAX_EVENT_STREAMS", "64", "`GET /jobs/{id}/events` streams open at once; more get 503 "
            "(`busy`)", "server"),
    Setting("VIDEO_MAX_BODY_BYTES", "33554432", "largest request body (`--max-body-bytes`); larger ones get 413 "
            "before they are read", "server"),
)
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


def read(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value, stripped, else its default. Raises KeyError for a name not listed above."""
    setting = BY_NAME[name]
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or setting.default


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    BY_NAME[name]  # a name not listed above is a bug: KeyError
    return bool((os.environ if environ is None else environ).get(name, "").strip())


def host_list(name: str, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """A comma-separated list of `host` or `host:port`, lower case."""
    return tuple(host.strip().lower() for host in read(name, environ).split(",") if host.strip())


def read_int(name: str, environ: Mapping[str, str] | None = None) -> int:
    value = read(name, environ)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def read_float(name: str, environ: Mapping[str, str] | None = None) -> float | None:
    """A number, or None when unset."""
    value = read(name, environ)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a number such as 0.05, got {value!r}") from None


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def read_flag(name: str, environ: Mapping[str, str] | None = None, default: bool = False) -> bool:
    """1/true/yes/on or 0/false/no/off; `default` where unset and the setting has no default of its own."""
    value = read(name, environ).lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name} must be 0 or 1, got {value!r}")


def speed_settings(device: torch.device, environ: Mapping[str, str] | None = None) -> SpeedSettings:
    """The GPU switches (`pipelines.base.SpeedSettings`) for a model on `device`."""
    from pipelines.base import SpeedSettings  # imported here: the CLI's --help needs no torch

    cuda = device.type == "cuda"
    compile_blocks = read_flag("VIDEO_COMPILE", environ, default=cuda)
    tiling = read("VIDEO_VAE_TILING", environ).lower()
    if tiling != "auto":
        try:
            tiling = "on" if read_flag("VIDEO_VAE_TILING", environ) else "off"
        except ValueError:
            raise ValueError(f"VIDEO_VAE_TILING must be auto, 1 or 0, got {tiling!r}") from None
    return SpeedSettings(compile=compile_blocks, warmup=read_flag("VIDEO_WARMUP", environ, default=compile_blocks),
                         step_cache=read_float("VIDEO_STEP_CACHE", environ),
                         cpu_offload=read_flag("VIDEO_CPU_OFFLOAD", environ) and cuda, vae_tiling=tiling,
                         stream_encode=read_flag("VIDEO_STREAM_ENCODE", environ, default=cuda))


def encode_threads(environ: Mapping[str, str] | None = None) -> int:
    """VIDEO_ENCODE_THREADS, else every core this process may use."""
    from encoders import cores

    if not is_set("VIDEO_ENCODE_THREADS", environ):
        return cores.available()
    threads = read_int("VIDEO_ENCODE_THREADS", environ)
    if threads < 1:
        raise ValueError(f"environment variable VIDEO_ENCODE_THREADS must be at least 1, got {threads}")
    return threads


def tiny_model_dir(model_id: str = "tiny", environ: Mapping[str, str] | None = None) -> Path:
    """Where the tiny model `model_id` is built and cached."""
    from pipelines import tiny

    return tiny.default_cache_dir(model_id, read("VIDEO_TINY_MODEL_DIR", environ), read("XDG_CACHE_HOME", environ))


def markdown_table(*sections: str) -> str:
    """README's table of the variables of `sections`."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        if setting.section in sections:
            default = setting.shown_default or (f"`{setting.default}`" if setting.default else "(unset)")
            rows.append(f"| `{setting.name}` | {default} | {setting.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    for sections in (("model", "limits"), ("gpu",), ("server",), ("jobs",)):
        print(f"{', '.join(sections)}:\n{markdown_table(*sections)}\n")
