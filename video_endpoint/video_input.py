"""An input video (`video`, `extend`): base64 text -> frames of the request's size and rate.

A client's video is the most dangerous input the endpoint takes, so nothing of it is parsed in
this process, and nothing is read from ffmpeg's human-readable log (a file can write into it:
metadata keys are printed unescaped). The checks, in order, each before any more work:
1. the base64 length against VIDEO_MAX_INPUT_VIDEO_BYTES;
2. the container from its first bytes (MP4/MOV, WebM/Matroska, GIF); a still image is named as one;
3. its packets, listed without decoding by the ffmpeg binary the encoders use (`-c copy -f
   framecrc`: one machine-written line a packet, the codec and size per stream), in a process of
   its own with a memory cap and a time limit, that container's demuxer forced, local-file
   access only and no decoder but the container's codecs (`-codec_whitelist`): one video stream,
   its codec on the list, its size, and its true duration, frame count and pixel rate from the
   packets' own timestamps (a header's duration is never trusted), against the limits; the
   listing stops as soon as a limit is passed; then the pixels to decode against
   VIDEO_MAX_INPUT_DECODE_PIXELS;
4. only then its frames, decoded by the same kind of process, the codec, format and frame size
   limits repeated to ffmpeg itself (`-codec_whitelist`, `-format_whitelist`, `-max_pixels`),
   straight to the request's width x height (cover, then centre crop, as images) and rate, read
   as raw RGB of a known size: the first frames only as far as the request uses them, or for
   `extend` to the end, stopped should more frames come out than the packets promised.
A hostile file can at worst make that process fail or run out of time: it is refused by field. A
client that hangs up (`cancelled`) kills its ffmpeg.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Literal

import numpy as np
from PIL import Image

from encoders._ffmpeg import killed_after
from encoders.cores import is_running
from video_endpoint.errors import Busy, Cancelled, InvalidRequest
from video_endpoint.image_input import decode_base64
from video_endpoint.request_schema import Limits

# container -> (ffmpeg demuxer, the codecs accepted in it)
CONTAINERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "MP4": ("mov", ("h264", "hevc", "av1", "vp9", "mpeg4")),
    "WebM": ("matroska", ("vp8", "vp9", "av1")),
    "GIF": ("gif", ("gif",)),
}
_STILL_IMAGES = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
_PROBE_TIMEOUT_S = 5.0
# ffmpeg processes reading client videos at once: a request with a video waits for one at most
# READER_WAIT_S, then is answered `busy` (no thread is parked for long)
_READERS = threading.BoundedSemaphore(2)
READER_WAIT_S = 1.0
_MEMORY_CAP_KIB = 2 * 2**20  # the ffmpeg process's address space: a header claiming a huge frame fails there
# framecrc's lines: "#codec_id 0: h264" for each stream, then "0,  dts,  pts,  duration,  size,  crc" a packet
_STREAM_LINE = re.compile(rb"^#(tb|media_type|codec_id|dimensions) (\d+): (\S+)$")
_NOT_DECODED = re.compile(rb"^(\[\w+ @ 0x[0-9a-f]+\] Codec \(\w+\) not on whitelist '[\w,]+'|\s*Last message "
                          rb"repeated \d+ times|\[[^\]\n]+\] Failed to open codec in avformat_find_stream_info)$",
                          re.MULTILINE)
_PACKET_LINE = re.compile(rb"^(\d+), *(-?\d+), *(-?\d+), *(\d+),")


@dataclass(frozen=True)
class InputVideo:
    frames: list[Image.Image]
    """RGB frames of the request's size, at its frame rate"""
    container: str
    codec: str
    source_size: tuple[int, int]
    source_fps: float
    duration_s: float

    def describe(self) -> dict[str, object]:
        """For diagnostics: what came in and what was used."""
        return {"container": self.container, "codec": self.codec, "size": list(self.source_size),
                "fps": round(self.source_fps, 3), "duration_s": round(self.duration_s, 3),
                "frames_used": len(self.frames)}


@dataclass(frozen=True)
class _Header:
    """What the packets say: written by ffmpeg, never by the file."""

    codec: str
    width: int
    height: int
    frames: int
    duration_s: float
    starts_s: tuple[float, ...] = ()
    """each packet's time from the first, in file order"""

    def frames_before(self, seconds: float) -> int:
        """The packets that start within the first `seconds`: what decoding that far decodes."""
        return sum(1 for start in self.starts_s if start <= seconds)

    @property
    def fps(self) -> float:
        return self.frames / self.duration_s if self.duration_s > 0 else 0.0


def container_of(data: bytes, field: str) -> str:
    """The container its first bytes name, or the refusal that says what it is instead."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM"
    if data[4:8] == b"ftyp":
        return "MP4"
    still = next((kind for magic, kind in _STILL_IMAGES.items() if data.startswith(magic)),
                 "WEBP" if data[8:12] == b"WEBP" else None)
    if still:
        raise InvalidRequest(f"{field} is a still image ({still}), not a video: send it as `image`", field=field)
    raise InvalidRequest(f"{field} is not an MP4, WebM or GIF video (its first bytes say neither)", field=field)


def read_video(text: str, field: str, width: int, height: int, fps: int, limits: Limits, count: int,
               keep: Literal["first", "last"] = "first", cancelled: threading.Event | None = None) -> InputVideo:
    """`count` frames of the video in `text` at `fps`, fitted to width x height: the first
    `count` (video-to-video) or the last (`extend`); fewer when the video is shorter. `cancelled`
    set (the client hung up) stops the reading at once."""
    data = decode_base64(text, limits.max_video_bytes, field, "VIDEO_MAX_INPUT_VIDEO_BYTES")
    container = container_of(data, field)
    if not _READERS.acquire(timeout=min(READER_WAIT_S, limits.video_decode_timeout_s)):
        raise Busy(f"{field}: every video reader is busy; retry shortly", field=field)
    try:
        return _read(data, container, field, width, height, fps, limits, count, keep, cancelled or threading.Event())
    finally:
        _READERS.release()


def _read(data: bytes, container: str, field: str, width: int, height: int, fps: int, limits: Limits, count: int,
          keep: Literal["first", "last"], cancelled: threading.Event) -> InputVideo:
    demuxer, codecs = CONTAINERS[container]
    with tempfile.TemporaryDirectory(prefix=f"{INPUT_FOLDER_PREFIX}{os.getpid()}-") as workdir:
        path = os.path.join(workdir, "input")
        with open(path, "wb") as file:
            file.write(data)
        screen = None
        if container == "GIF":  # ffmpeg leaves out a GIF's size it cannot use; its screen descriptor says it
            screen = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
            _check_size(*screen, field, limits)
        header = _probe(path, demuxer, codecs, container, field, limits, cancelled)
        if screen is not None:
            header = dataclasses.replace(header, width=screen[0], height=screen[1])
        _check(header, container, codecs, field, limits)
        # the source frames decoded: all for `extend`, those the first `count` output frames span for `video`
        decoded_frames = header.frames if keep == "last" else header.frames_before((count + 1) / fps)
        if decoded_frames * header.width * header.height > limits.max_video_decode_pixels:
            raise InvalidRequest(
                f"{field}: reading it would decode {decoded_frames} frames of {header.width}x{header.height}; this "
                f"server decodes at most {limits.max_video_decode_pixels} pixels of a video (setting "
                "VIDEO_MAX_INPUT_DECODE_PIXELS): send a shorter or smaller clip", field=field)
        frames = _decode(path, demuxer, codecs, header, field, width, height, fps, count, keep, limits, cancelled)
    if len(frames) < 2:
        raise InvalidRequest(f"{field} holds {'no frames' if not frames else 'one frame'} at {fps} fps"
                             + ("" if not frames else ": send a still image as `image`"), field=field)
    return InputVideo([Image.fromarray(frame) for frame in frames], container, header.codec,
                      (header.width, header.height), header.fps, header.duration_s)


INPUT_FOLDER_PREFIX = "video-input-"


def remove_stale_input_folders(folder: str | None = None) -> list[str]:
    """Remove the input-video folders of processes that no longer run (a server killed while reading
    a video leaves the client's file in the temp folder); the paths removed. A folder's name carries
    the pid of the process that made it."""
    folder = folder or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        pid = name.removeprefix(INPUT_FOLDER_PREFIX).partition("-")[0]
        path = os.path.join(folder, name)
        if (name.startswith(INPUT_FOLDER_PREFIX) and pid.isdigit() and not is_running(int(pid))
                and os.path.isdir(path) and not os.path.islink(path)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _ffmpeg(*args: str) -> list[str]:
    import imageio_ffmpeg  # as the encoders do: only where a video comes in

    executable = imageio_ffmpeg.get_ffmpeg_exe()
    # the shell sets the memory cap of the process it then becomes (no preexec_fn: threads are running)
    return ["/bin/sh", "-c", 'ulimit -v "$0" && exec "$@"', str(_MEMORY_CAP_KIB), executable,
            "-hide_banner", "-nostdin", *args]


def _input(path: str, demuxer: str, codecs: tuple[str, ...]) -> list[str]:
    """The input options every reading of a client's file takes: its demuxer and no other, local
    files only, no decoder but its container's codecs (the stream probe opens decoders too)."""
    return ["-codec_whitelist", ",".join(codecs), "-format_whitelist", demuxer, "-protocol_whitelist", "file",
            "-f", demuxer, "-i", path]


@dataclass
class _Run:
    process: subprocess.Popen[bytes]
    out: IO[bytes]
    log: IO[bytes]
    expired: threading.Event

    def finish(self) -> tuple[int, bytes]:
        """Its exit status and the start of its log (what it complained of), once it has ended."""
        returncode = self.process.wait()
        self.log.seek(0)
        return returncode, self.log.read(4000).strip()


@contextlib.contextmanager
def _running(command: list[str], seconds: float, cancelled: threading.Event) -> Iterator[_Run]:
    """`command` with its stdout to read and its log in a file; killed after `seconds`, when
    `cancelled` is set, or when the block is left early."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        assert process.stdout is not None
        try:
            with killed_after(process, seconds, cancelled=cancelled) as expired:
                yield _Run(process, process.stdout, log, expired)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()


def _probe(path: str, demuxer: str, codecs: tuple[str, ...], container: str, field: str, limits: Limits,
           cancelled: threading.Event) -> _Header:
    """The video stream's codec, size, packet count and true duration, from ffmpeg's packet listing."""
    # its exit status says whether every packet could be read (-xerror); its log is not read: decoders
    # it may not open (the soundtrack's) are logged as errors there
    command = _ffmpeg("-loglevel", "fatal", "-xerror", "-threads", "1", *_input(path, demuxer, codecs),
                      "-map", "0:v?", "-map", "0:a?", "-map_metadata", "-1", "-fflags", "+bitexact",
                      "-c", "copy", "-f", "framecrc", "pipe:1")
    streams: dict[int, dict[str, str]] = {}
    frames, first, end = 0, None, None
    starts: list[int] = []
    over: tuple[str, str, str] | None = None
    timebase = 1.0
    returncode = 0
    with _running(command, _PROBE_TIMEOUT_S, cancelled) as run:
        for line in run.out:
            if packet := _PACKET_LINE.match(line):
                if int(packet.group(1)) != 0 or streams.get(0, {}).get("media_type") != "video":
                    continue  # the video stream's packets are stream 0's (video streams are mapped first)
                pts, duration = int(packet.group(3)), int(packet.group(4))
                frames += 1
                starts.append(pts)
                first = pts if first is None else min(first, pts)
                end = pts + duration if end is None else max(end, pts + duration)
                seconds = (end - first) * timebase
                if frames > limits.max_video_frames:
                    over = (f"more than {limits.max_video_frames} frames", "VIDEO_MAX_INPUT_VIDEO_FRAMES", "frames")
                elif seconds > limits.max_video_seconds:
                    over = (f"more than {limits.max_video_seconds} s", "VIDEO_MAX_INPUT_VIDEO_S", "seconds")
                if over:
                    break  # leaving the block kills it: a file of a million packets costs no more
            elif stream := _STREAM_LINE.match(line.rstrip(b"\n")):
                key, index, value = stream.group(1).decode(), int(stream.group(2)), stream.group(3).decode()
                streams.setdefault(index, {})[key] = value
                if key == "tb" and index == 0 and (fraction := re.fullmatch(r"(\d{1,12})/(\d{1,12})", value)):
                    timebase = int(fraction.group(1)) / max(1, int(fraction.group(2)))
        if not over:
            returncode, _ = run.finish()
    if cancelled.is_set():
        raise Cancelled(f"{field}: the client went away; reading stopped", field=field)
    if over:
        said, setting, unit = over
        raise InvalidRequest(f"{field}: its packets say {said}; this server takes at most "
                             f"{getattr(limits, _LIMIT_OF[setting])} {unit} (setting {setting})", field=field)
    if run.expired.is_set():
        raise InvalidRequest(f"{field}: its packets could not be listed in {_PROBE_TIMEOUT_S:.0f} s", field=field)
    videos = [info for _, info in sorted(streams.items()) if info.get("media_type") == "video"]
    if returncode != 0 or not streams:
        raise InvalidRequest(f"{field} is not a readable {container} file (truncated or corrupt)", field=field)
    if not videos:
        raise InvalidRequest(f"{field} holds no video stream", field=field)
    if len(videos) > 1:
        raise InvalidRequest(f"{field} holds {len(videos)} video streams; send a file with one", field=field)
    size = re.fullmatch(r"(\d{1,6})x(\d{1,6})", videos[0].get("dimensions", ""))
    width, height = (int(size.group(1)), int(size.group(2))) if size else (0, 0)
    seconds = (end - first) * timebase if first is not None and end is not None else 0.0
    origin = first or 0
    return _Header(videos[0].get("codec_id", "unknown"), width, height, frames, seconds,
                   tuple((start - origin) * timebase for start in starts))


_LIMIT_OF = {"VIDEO_MAX_INPUT_VIDEO_FRAMES": "max_video_frames", "VIDEO_MAX_INPUT_VIDEO_S": "max_video_seconds"}


def _check(header: _Header, container: str, codecs: tuple[str, ...], field: str, limits: Limits) -> None:
    if header.codec not in codecs:
        raise InvalidRequest(f"{field}: codec {header.codec} is not one this server reads in {container} "
                             f"(accepted: {', '.join(codecs)})", field=field)
    _check_size(header.width, header.height, field, limits)
    pixels = header.width * header.height
    if pixels * header.fps > limits.max_video_pixel_rate:
        raise InvalidRequest(f"{field}: its packets say {pixels * header.fps:.0f} pixels a second; this server "
                             f"takes at most {limits.max_video_pixel_rate} pixels a second (setting "
                             "VIDEO_MAX_INPUT_PIXEL_RATE)", field=field)


def _check_size(width: int, height: int, field: str, limits: Limits) -> None:
    if width * height == 0:
        raise InvalidRequest(f"{field}: its header says the frames have no pixels", field=field)
    if width * height > limits.max_video_frame_pixels:
        raise InvalidRequest(f"{field}: its header says frames of {width}x{height} pixels; this server takes at "
                             f"most {limits.max_video_frame_pixels} pixels a frame (setting "
                             "VIDEO_MAX_INPUT_VIDEO_PIXELS)", field=field)


def _decode(path: str, demuxer: str, codecs: tuple[str, ...], header: _Header, field: str, width: int, height: int,
            fps: int, count: int, keep: Literal["first", "last"], limits: Limits,
            cancelled: threading.Event) -> list[np.ndarray]:
    # Frame n of the answer is the source frame on screen at n / fps: the last one shown at or
    # before it (1 ms of slack for containers that round timestamps to milliseconds). ffmpeg's fps
    # filter keeps the last frame of each slot, so each frame is moved a slot, less the slack, later.
    fit = (f"setpts=PTS+{1 / fps - 0.001:.6f}/TB,fps={fps}:round=down,"
           f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=lanczos,crop={width}:{height},"
           "format=rgb24")
    frame_bytes = width * height * 3
    # the most frames its packets allow at `fps` (a decoder that makes more is stopped)
    promised = math.ceil(header.duration_s * fps) + 2
    first_only = ["-frames:v", str(count)] if keep == "first" else []  # nothing past what is used is decoded
    command = _ffmpeg("-loglevel", "error", "-xerror", "-threads", "2",
                      "-max_pixels", str(limits.max_video_frame_pixels), *_input(path, demuxer, codecs),
                      "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", fit, *first_only,
                      "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")
    kept: collections.deque[np.ndarray] = collections.deque(maxlen=count)
    made, returncode, complaints = 0, 0, b""
    with _running(command, limits.video_decode_timeout_s, cancelled) as run:
        while len(chunk := run.out.read(frame_bytes)) == frame_bytes:
            made += 1
            if made > promised:
                break
            if keep == "last" or len(kept) < count:
                kept.append(np.frombuffer(chunk, np.uint8).reshape(height, width, 3))
        else:
            returncode, complaints = run.finish()
    if cancelled.is_set():
        raise Cancelled(f"{field}: the client went away; reading stopped", field=field)
    if run.expired.is_set():
        raise InvalidRequest(f"{field} took more than {limits.video_decode_timeout_s} s to decode (setting "
                             "VIDEO_INPUT_DECODE_TIMEOUT_S)", field=field)
    if made > promised:
        raise InvalidRequest(f"{field} decodes to more frames than its packets say (truncated or corrupt)",
                             field=field)
    # -xerror stops it at damage in most streams; for the rest any error it logs counts, but for its
    # refusals to open the decoders of other streams (a soundtrack's: not on the whitelist)
    if returncode != 0 or _NOT_DECODED.sub(b"", complaints).strip():
        raise InvalidRequest(f"{field} could not be decoded to the end (truncated or corrupt)", field=field)
    return list(kept)
