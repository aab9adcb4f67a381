"""An input video (`video`, `extend`): base64 text -> frames of the request's size and rate.

A client's video is the most dangerous input the endpoint takes, so nothing of it is parsed in
this process. The checks, in order, each before any more work:
1. the base64 length against VIDEO_MAX_INPUT_VIDEO_BYTES;
2. the container from its first bytes (MP4/MOV, WebM/Matroska, GIF); a still image is named as one;
3. its header, read by the ffmpeg binary the encoders use, in a process of its own with a memory
   cap and a time limit, with that container's demuxer forced and local-file access only:
   one video stream, a codec of the container's list, dimensions, duration, frame count
   (duration x rate) and pixel rate against the limits;
4. only then its frames, decoded by the same kind of process straight to the request's width x
   height (cover, then centre crop, as images) and rate, read as raw RGB of a known size.
A hostile file can at worst make that process fail or run out of time: it is refused by field.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from encoders._ffmpeg import killed_after
from video_endpoint.errors import Busy, InvalidRequest
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
# ffmpeg processes reading client videos at once: more requests with videos wait their turn (up to
# their decode time limit) rather than each adding a process
_READERS = threading.BoundedSemaphore(2)
_MEMORY_CAP_KIB = 4 * 2**20  # the ffmpeg process's address space: a header claiming a huge frame fails there
_DURATION = re.compile(r"^  Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)
# only the lines ffmpeg writes itself (two spaces in); metadata a file carries is indented further
_VIDEO_STREAM = re.compile(r"^  Stream #0:\d+[^:\n]*: Video: (\w+)(.*)$", re.MULTILINE)
_SIZE = re.compile(r", (\d{1,6})x(\d{1,6})[ ,]")
_RATE = re.compile(r", (\d+(?:\.\d+)?)(k?) (?:fps|tbr)")


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
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float


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
               keep: Literal["first", "last"] = "first") -> InputVideo:
    """`count` frames of the video in `text` at `fps`, fitted to width x height: the first
    `count` (video-to-video) or the last (`extend`); fewer when the video is shorter. The whole
    file is decoded (in the time VIDEO_INPUT_DECODE_TIMEOUT_S allows) so that damage anywhere refuses it."""
    data = decode_base64(text, limits.max_video_bytes, field, "VIDEO_MAX_INPUT_VIDEO_BYTES")
    container = container_of(data, field)
    if not _READERS.acquire(timeout=limits.video_decode_timeout_s):
        raise Busy(f"{field}: every video reader is busy; retry shortly", field=field)
    try:
        return _read(data, container, field, width, height, fps, limits, count, keep)
    finally:
        _READERS.release()


def _read(data: bytes, container: str, field: str, width: int, height: int, fps: int, limits: Limits, count: int,
          keep: Literal["first", "last"]) -> InputVideo:
    demuxer, codecs = CONTAINERS[container]
    with tempfile.TemporaryDirectory(prefix="video-input-") as workdir:
        path = os.path.join(workdir, "input")
        with open(path, "wb") as file:
            file.write(data)
        header = _probe(path, demuxer, container, field)
        if container == "GIF":  # ffmpeg leaves out a GIF's size it cannot use; its screen descriptor says it
            screen = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
            header = dataclasses.replace(header, width=screen[0], height=screen[1])
        _check(header, container, codecs, field, limits)
        frames = _decode(path, demuxer, field, width, height, fps, count, keep, limits)
    if len(frames) < 2:
        raise InvalidRequest(f"{field} holds {'no frames' if not frames else 'one frame'} at {fps} fps"
                             + ("" if not frames else ": send a still image as `image`"), field=field)
    return InputVideo([Image.fromarray(frame) for frame in frames], container, header.codec,
                      (header.width, header.height), header.fps, header.duration_s)


def _ffmpeg(*args: str) -> list[str]:
    import imageio_ffmpeg  # as the encoders do: only where a video comes in

    executable = imageio_ffmpeg.get_ffmpeg_exe()
    # the shell sets the memory cap of the process it then becomes (no preexec_fn: threads are running)
    return ["/bin/sh", "-c", 'ulimit -v "$0" && exec "$@"', str(_MEMORY_CAP_KIB), executable,
            "-hide_banner", "-nostdin", "-threads", "2", *args]


def _probe(path: str, demuxer: str, container: str, field: str) -> _Header:
    command = _ffmpeg("-f", demuxer, "-protocol_whitelist", "file", "-i", path)
    try:  # no output given: ffmpeg reads the header, prints it and exits (non-zero, as it has nothing to do)
        done = subprocess.run(command, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidRequest(f"{field}: its header could not be read in {_PROBE_TIMEOUT_S:.0f} s",
                             field=field) from None
    log = done.stderr.decode("utf-8", "replace")
    duration, stream = _DURATION.search(log), _VIDEO_STREAM.search(log)
    if "Input #0" not in log:
        raise InvalidRequest(f"{field} is not a readable {container} file (truncated or corrupt)", field=field)
    if stream is None:
        raise InvalidRequest(f"{field} holds no video stream", field=field)
    codec, details = stream.group(1), stream.group(2)
    size, rate = _SIZE.search(details), _RATE.search(details)
    if duration is None or rate is None or (size is None and container != "GIF"):
        missing = "duration" if duration is None else "frame rate" if rate is None else "frame size"
        raise InvalidRequest(f"{field} is not a readable {container} file: its header does not say its {missing}",
                             field=field)
    hours, minutes, seconds = duration.groups()
    fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)
    width, height = (int(size.group(1)), int(size.group(2))) if size else (0, 0)
    return _Header(codec, width, height, fps,
                   int(hours) * 3600 + int(minutes) * 60 + float(seconds))


def _check(header: _Header, container: str, codecs: tuple[str, ...], field: str, limits: Limits) -> None:
    if header.codec not in codecs:
        raise InvalidRequest(f"{field}: codec {header.codec} is not one this server reads in {container} "
                             f"(accepted: {', '.join(codecs)})", field=field)
    pixels = header.width * header.height
    bounds = [
        (pixels, limits.max_video_frame_pixels, f"frames of {header.width}x{header.height} pixels",
         "VIDEO_MAX_INPUT_VIDEO_PIXELS", "pixels a frame"),
        (header.duration_s, limits.max_video_seconds, f"{header.duration_s:.1f} s", "VIDEO_MAX_INPUT_VIDEO_S",
         "seconds"),
        (header.duration_s * header.fps, limits.max_video_frames, f"{header.duration_s * header.fps:.0f} frames",
         "VIDEO_MAX_INPUT_VIDEO_FRAMES", "frames"),
        (pixels * header.fps, limits.max_video_pixel_rate, f"{pixels * header.fps:.0f} pixels a second",
         "VIDEO_MAX_INPUT_PIXEL_RATE", "pixels a second"),
    ]
    if pixels == 0:
        raise InvalidRequest(f"{field}: its header says the frames have no pixels", field=field)
    for value, bound, said, setting, unit in bounds:
        if value > bound:
            raise InvalidRequest(f"{field}: its header says {said}; this server takes at most {bound} {unit} "
                                 f"(setting {setting})", field=field)


def _decode(path: str, demuxer: str, field: str, width: int, height: int, fps: int, count: int,
            keep: Literal["first", "last"], limits: Limits) -> list[np.ndarray]:
    # Frame n of the answer is the source frame on screen at n / fps: the last one shown at or
    # before it (1 ms of slack for containers that round timestamps to milliseconds). ffmpeg's fps
    # filter keeps the last frame of each slot, so each frame is moved a slot, less the slack, later.
    fit = (f"setpts=PTS+{1 / fps - 0.001:.6f}/TB,fps={fps}:round=down,"
           f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=lanczos,crop={width}:{height},"
           "format=rgb24")
    frame_bytes = width * height * 3
    command = _ffmpeg("-loglevel", "error", "-xerror", "-f", demuxer, "-protocol_whitelist", "file", "-i", path,
                      "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", fit,
                      "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")
    kept: collections.deque[np.ndarray] = collections.deque(maxlen=count)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        try:
            with killed_after(process, limits.video_decode_timeout_s) as expired:
                assert process.stdout is not None
                while len(chunk := process.stdout.read(frame_bytes)) == frame_bytes:
                    # to the end, whatever is kept: damage anywhere in the file refuses it
                    if keep == "last" or len(kept) < count:
                        kept.append(np.frombuffer(chunk, np.uint8).reshape(height, width, 3))
                returncode = process.wait()
        finally:
            process.stdout.close() if process.stdout else None
        log.seek(0)
        complaints = log.read(4000).strip()
    if expired.is_set():
        raise InvalidRequest(f"{field} took more than {limits.video_decode_timeout_s} s to decode (setting "
                             "VIDEO_INPUT_DECODE_TIMEOUT_S)", field=field)
    # -xerror stops it at damage in most streams; for the rest any error it logs counts
    if returncode != 0 or complaints:
        raise InvalidRequest(f"{field} could not be decoded to the end (truncated or corrupt)", field=field)
    return list(kept)
