"""Command line: `video-endpoint generate --prompt "..." -o out.gif out.webm` and `video-endpoint serve`
(the same as `python -m video_endpoint ...`).

Flags are built from the request schema's fields (their defaults and help come from there);
the files to write choose the output formats by extension. Without `--model`, the tiny
random-weight model is used and its output is noise.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any, get_args

from encoders.base import VideoOptions
from encoders.registry import FORMATS
from video_endpoint import settings
from video_endpoint.client import MAX_WAIT_S
from video_endpoint.request_schema import VideoRequest

# Short spellings users type; the schema's own names work too.
ALIASES = {"num_frames": ["--frames"], "num_inference_steps": ["--steps"], "guidance_scale": ["--guidance"]}
# Fields that are not plain flags: images and videos are paths here, outputs come from -o, loras from
# --lora, keyframes from --keyframe.
FILE_FLAGS = {"image": "input image file: image-to-video", "last_image": "image file the video ends on",
              "video": "video file (MP4, WebM, GIF) to transform: video-to-video",
              "extend": "video file (MP4, WebM, GIF) to continue"}
NOT_FLAGS = {*FILE_FLAGS, "outputs", "return_base64", "loras", "keyframes", *FORMATS}
# --quality: the formats whose options have a quality, and its choices, as their schema says
WITH_QUALITY = [name for name, module in FORMATS.items() if "quality" in module.Options.model_fields]
QUALITIES = list(get_args(VideoOptions.model_fields["quality"].annotation))


def _scalar_flags(parser: argparse.ArgumentParser) -> None:
    for name, info in VideoRequest.model_fields.items():
        if name in NOT_FLAGS:
            continue
        declared = [info.annotation, *get_args(info.annotation)]  # `float | None` declares float
        flags = [f"--{name.replace('_', '-')}", *ALIASES.get(name, [])]
        if bool in declared:  # a switch: given = true, absent = the schema's default (false)
            parser.add_argument(*flags, dest=name, action="store_const", const=True, default=None,
                                help=info.description)
            continue
        kind = next((k for k in (int, float) if k in declared), str)
        default = "required" if info.is_required() else f"default {info.default!r}"
        parser.add_argument(*flags, dest=name, type=kind, default=None,
                            required=info.is_required(), help=f"{info.description} ({default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="video-endpoint", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="generate one video and write it to files")
    _scalar_flags(generate)
    for name, text in FILE_FLAGS.items():
        generate.add_argument(f"--{name.replace('_', '-')}", dest=name, type=Path, help=text)
    generate.add_argument("--keyframe", dest="keyframes", action="append", type=_keyframe,
                          metavar="FRAME:PATH[:STRENGTH]",
                          help="an image at an output frame (repeat for more), e.g. --keyframe 16:middle.png:0.8")
    generate.add_argument("-o", "--output", nargs="+", type=Path, default=[Path("output.gif")],
                          help=f"files to write; the extension picks the format ({', '.join(FORMATS)})")
    generate.add_argument("--lora", dest="loras", action="append", type=_lora_choice, metavar="NAME[=SCALE]",
                          help="a LoRA adapter of the model's (its loras/ folder or $VIDEO_LORAS), scale 1 by "
                               "default; repeat for several")
    generate.add_argument("--url", help="generate on a deployed endpoint (or `video-endpoint serve`) instead of "
                                        "here: submits a job, polls it with a progress bar, writes the files")
    generate.add_argument("--token-file", type=Path, help="file holding the bearer token for --url (default: "
                                                           "$HF_TOKEN)")
    generate.add_argument("--token", help="bearer token for --url; prefer $HF_TOKEN or --token-file (a command "
                                          "line is visible to every user of the machine)")
    generate.add_argument("--overwrite", action="store_true", help="replace output files that exist (default: "
                                                                    "refuse before generating)")
    generate.add_argument("--poll", type=float, default=1.0, help="seconds between polls of --url's job")
    generate.add_argument("--max-wait", type=float, default=MAX_WAIT_S,
                          help="seconds to wait for --url's job to end before cancelling it (default: %(default)g)")
    generate.add_argument("--quality", choices=QUALITIES,
                          help=f"encoder preset of every output that has one ({', '.join(WITH_QUALITY)})")
    serve = commands.add_parser("serve", help="serve the Endpoint protocol over HTTP (POST /, GET /health)")
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1 without a token, "
                                      "0.0.0.0 with one)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--token", help="bearer token every request must carry (default $VIDEO_API_TOKEN)")
    serve.add_argument("--queue-depth", type=int, help="requests that may wait (default $VIDEO_QUEUE_DEPTH or "
                                                       f"{settings.BY_NAME['VIDEO_QUEUE_DEPTH'].default})")
    serve.add_argument("--max-body-bytes", type=int,
                       help="largest request body in bytes (default $VIDEO_MAX_BODY_BYTES or "
                            f"{settings.BY_NAME['VIDEO_MAX_BODY_BYTES'].default})")
    for command in (generate, serve):
        command.add_argument("--model", default=settings.read("VIDEO_MODEL_ID") if settings.is_set("VIDEO_MODEL_ID")
                             else "tiny",
                             help="model directory, Hub id, or 'tiny' (random weights; the default)")
    return parser


def _lora_choice(text: str) -> dict[str, Any]:
    name, sep, scale = text.partition("=")
    if not sep:
        return {"name": name}
    try:
        return {"name": name, "scale": float(scale)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lora {text}: the scale after '=' must be a number") from None


def _keyframe(text: str) -> dict[str, Any]:
    """FRAME:PATH[:STRENGTH]; a path may hold ':' itself (the strength is a number after the last one)."""
    frame, _, rest = text.partition(":")
    path, _, strength = rest.rpartition(":")
    try:
        choice: dict[str, Any] = {"frame": int(frame), "path": Path(path), "strength": float(strength)}
    except ValueError:
        choice = {"frame": int(frame) if frame.isdigit() else -1, "path": Path(rest)}
    if choice["frame"] < 0 or not str(choice["path"]) or str(choice["path"]) == ".":
        raise argparse.ArgumentTypeError(f"--keyframe {text}: give FRAME:PATH or FRAME:PATH:STRENGTH")
    return choice


class UsageError(Exception):
    """A file the command cannot read or write: said in one line before any model is loaded."""


def _check_output(path: Path, overwrite: bool) -> str:
    """The format `path` is written as; refuses what could only fail after the generation."""
    name = path.suffix.lstrip(".").lower()
    if name not in FORMATS:
        raise UsageError(f"cannot write {path}: unknown extension (use {', '.join(FORMATS)})")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists: choose another name, or add --overwrite")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: no directory {folder}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied")
    return name


def _file_base64(path: Path, flag: str) -> str:
    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise UsageError(f"cannot read {flag} {path}: {exc.strerror or exc}") from None


def request_from(args: argparse.Namespace) -> dict[str, Any]:
    """The request, with every file checked: raises UsageError before anything is generated."""
    inputs = {name: getattr(args, name) for name in VideoRequest.model_fields
              if name not in NOT_FLAGS and getattr(args, name, None) is not None}
    formats = [_check_output(path, args.overwrite) for path in args.output]
    for index, path in enumerate(args.output):
        earlier = [other for other in args.output[:index] if other.resolve() == path.resolve()]
        if earlier:
            raise UsageError(f"-o names {path} twice")
        if formats[index] in formats[:index]:
            raise UsageError(f"-o names two .{formats[index]} files: one file per format")
    if args.url is not None:
        from video_endpoint import client

        try:
            client.parse_url(args.url)
        except client.EndpointError as exc:
            raise UsageError(str(exc)) from None
    inputs["outputs"] = formats
    for name in FILE_FLAGS:
        if getattr(args, name) is not None:
            inputs[name] = _file_base64(getattr(args, name), f"--{name.replace('_', '-')}")
    if args.keyframes:
        inputs["keyframes"] = [{"image": _file_base64(choice["path"], "--keyframe"),
                                **{k: v for k, v in choice.items() if k != "path"}} for choice in args.keyframes]
    if args.loras:
        inputs["loras"] = args.loras
    if args.quality:  # every requested format that has the option (WebM and MP4 so far)
        inputs.update({name: {"quality": args.quality} for name in formats if name in WITH_QUALITY})
    inputs["return_base64"] = args.url is not None  # raw bytes in-process; JSON carries base64
    return {"inputs": inputs}


def generate(args: argparse.Namespace) -> int:
    try:
        request = request_from(args)  # before loading: a bad path costs nothing
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.url:  # a client: torch and diffusers are never imported
        return generate_remote(args, request)
    from tqdm import tqdm  # imported here: `--help` and `--url` stay quick

    from video_endpoint.client import write_file
    from video_endpoint.endpoint import EndpointHandler
    from video_endpoint.errors import ModelLoadError

    _warn_if_tiny(args.model)
    try:
        handler = EndpointHandler("", model_id=args.model)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    progress = tqdm(desc="denoising", unit="step", file=sys.stderr)

    def on_step(done: int, total: int) -> None:
        progress.total = total
        progress.update(done - progress.n)

    result = handler(request, on_step=on_step)
    progress.close()
    if not result["ok"]:
        print(json.dumps(result, indent=2), file=sys.stderr)
        return 1
    for path, name in zip(args.output, request["inputs"]["outputs"], strict=True):
        try:
            write_file(path, result["outputs"][name], args.overwrite)
        except OSError as exc:  # e.g. the disk filled up meanwhile
            print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    print(json.dumps(result["diagnostics"], indent=2))
    return 0


def _warn_if_tiny(model: str) -> None:
    if model == "tiny":
        print("note: the tiny random-weight model generates noise; use --model for a real model",
              file=sys.stderr)


def serve(args: argparse.Namespace) -> int:
    from video_endpoint import server_logs

    server_logs.configure_process()  # before diffusers and transformers are imported: their lines too
    from video_endpoint.endpoint import EndpointHandler
    from video_endpoint.server import ServerSettings
    from video_endpoint.server import serve as run_server

    _warn_if_tiny(args.model)
    server_settings = ServerSettings.from_env(token=args.token, queue_depth=args.queue_depth,
                                              max_body_bytes=args.max_body_bytes)
    run_server(lambda: EndpointHandler("", model_id=args.model), server_settings, args.host, args.port)
    return 0


def generate_remote(args: argparse.Namespace, request: dict[str, Any]) -> int:
    from video_endpoint import client

    try:
        token = _client_token(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    show, close = client.progress_bar()
    try:
        answer = client.run_job(args.url, token, request, poll_s=args.poll, on_progress=show,
                                max_wait_s=args.max_wait)
    except client.EndpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        close()
    job = answer.get("job")
    if not isinstance(job, dict) or job.get("status") != "succeeded":
        print(json.dumps(answer, indent=2), file=sys.stderr)
        return 1
    try:
        client.write_outputs(answer, args.output, request["inputs"]["outputs"], args.overwrite)
    except client.EndpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer.get("diagnostics"), indent=2))
    return 0


def _client_token(args: argparse.Namespace) -> str | None:
    """--token-file, else --token, else $HF_TOKEN."""
    if args.token_file is not None:
        try:
            return args.token_file.read_text().strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --token-file {args.token_file}: {getattr(exc, 'strerror', None) or exc}") \
                from None
    return args.token or settings.read("HF_TOKEN") or None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"generate": generate, "serve": serve}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
