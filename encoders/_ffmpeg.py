"""The one place that builds ffmpeg command lines (WebM and any later video format share it).

Frames go to the ffmpeg binary that `imageio-ffmpeg` bundles as one raw RGB stream on stdin:
no temporary files of raw frames. The encoded file is written to a private temporary directory
because the muxers need a seekable output (WebM cues, MP4 `+faststart`). The encoder runs with
`-threads` set to the clip's cores (`Clip.threads`), not ffmpeg's guess from the host's count.
A clip's soundtrack (LTX-2) goes in as a second input, a WAV file of exactly the video's
duration, and is muxed with the format's audio codec.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from encoders.base import Clip

# RGB -> YUV with the BT.709 matrix in limited range, and the stream tagged the same way, so that
# players convert the colours back exactly (untagged streams are guessed at, differently per player).
# The frames' tags decide what the encoder and muxer write (-colorspace alone leaves primaries
# and transfer "unknown" in a WebM), hence setparams.
_COLOUR_FILTER = ("scale=out_color_matrix=bt709:out_range=limited,format={pix_fmt},"
                  "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=limited")
_EVEN_SIZE_FILTER = "pad=ceil(iw/2)*2:ceil(ih/2)*2,"  # 4:2:0 codecs such as H.264 need even sizes
ENCODE_TIMEOUT_S = 600


class FfmpegError(RuntimeError):
    """ffmpeg is missing, failed or timed out; the message holds the tail of its log."""


def command(clip: Clip, out_path: str, *, codec: str, codec_args: Sequence[str] = (),
            pix_fmt: str = "yuv420p", even_size: bool = False, audio_path: str | None = None,
            audio_args: Sequence[str] = ()) -> list[str]:
    """The ffmpeg command line that reads `clip` as raw RGB on stdin (and its soundtrack from
    `audio_path`, encoded with `audio_args`) and writes `out_path`."""
    import imageio_ffmpeg  # here, not at import: GIF and ZIP work where the ffmpeg wheel is absent

    try:
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise FfmpegError(f"no ffmpeg executable: {exc}") from exc
    filters = (_EVEN_SIZE_FILTER if even_size else "") + _COLOUR_FILTER.format(pix_fmt=pix_fmt)
    audio = ["-map", "0:v", "-map", "1:a", *audio_args] if audio_path else ["-an"]
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{clip.width}x{clip.height}",
        "-framerate", str(clip.fps), "-i", "pipe:0", *(["-i", audio_path] if audio_path else []),
        *audio, "-vf", filters, "-c:v", codec, *codec_args, "-threads", str(clip.threads),
        out_path,
    ]


def encode(clip: Clip, *, codec: str, suffix: str, codec_args: Sequence[str] = (),
           pix_fmt: str = "yuv420p", even_size: bool = False, audio_args: Sequence[str] = ()) -> bytes:
    """Encode `clip` with `codec` (its soundtrack, if any, with `audio_args`) into a file ending
    in `suffix` and return its bytes."""
    with tempfile.TemporaryDirectory(prefix="video-encode-") as workdir:
        out_path = os.path.join(workdir, "out" + suffix)
        soundtrack, audio_path = clip.soundtrack(), None
        if soundtrack is not None:
            audio_path = os.path.join(workdir, "audio.wav")
            with open(audio_path, "wb") as wav:
                wav.write(soundtrack.wav())
        cmd = command(clip, out_path, codec=codec, codec_args=codec_args, pix_fmt=pix_fmt,
                      even_size=even_size, audio_path=audio_path, audio_args=audio_args)
        log_path = os.path.join(workdir, "ffmpeg.log")
        with open(log_path, "wb") as log:
            returncode = _run(cmd, clip, log, codec)
        if returncode != 0:
            with open(log_path, "rb") as log:
                text = log.read().decode("utf-8", "replace").strip()[-2000:]
            raise FfmpegError(f"ffmpeg ({codec}) exited with {returncode}: {text}")
        with open(out_path, "rb") as encoded:
            return encoded.read()


@contextlib.contextmanager
def killed_after(process: subprocess.Popen, seconds: float, starting: Callable[[], None] | None = None,
                 cancelled: threading.Event | None = None) -> Iterator[threading.Event]:
    """Kill `process` if it still runs `seconds` after entering (after `starting()` returns, where
    given), or as soon as `cancelled` is set; the event is set when it was killed for its time.
    Leaving the block stops the clock."""
    expired, left = threading.Event(), threading.Event()

    def watch() -> None:
        if starting is not None:
            starting()
        ends = time.monotonic() + seconds
        while not left.wait(min(_CANCEL_CHECK_S, max(0.0, ends - time.monotonic()))):
            if cancelled is not None and cancelled.is_set():
                process.kill()
                return
            if time.monotonic() >= ends:
                expired.set()
                process.kill()
                return

    threading.Thread(target=watch, name="ffmpeg-deadline", daemon=True).start()
    try:
        yield expired
    finally:
        left.set()


_CANCEL_CHECK_S = 0.1


def _run(cmd: list[str], clip: Clip, log: BinaryIO, codec: str) -> int:
    """Run `cmd` with the clip's frames on its stdin and its messages in `log`; its exit status.
    The frames go in one write call per batch that arrives (`Clip.batches`), without a copy, that
    passes them on as fast as ffmpeg reads them (`subprocess.run(input=)` hands them over 4 KB at a
    time: 3x this process's CPU time). A timer kills an ffmpeg that takes longer than
    ENCODE_TIMEOUT_S once the last frame is decoded; withdrawn frames (`FramesWithdrawn`) kill it."""
    try:
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
    except OSError as exc:
        raise FfmpegError(f"ffmpeg ({codec}) did not start: {exc}") from exc
    assert process.stdin is not None
    try:
        with killed_after(process, ENCODE_TIMEOUT_S, starting=clip.settled) as timed_out:
            try:
                for batch in clip.batches():
                    process.stdin.write(memoryview(batch.data).cast("B"))
                process.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg stopped reading: it exited, and its status and log say why
            returncode = process.wait()
    finally:
        if process.poll() is None:  # interrupted here (or the frames were withdrawn): none is left running
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            process.stdin.close()
    if timed_out.is_set():
        raise FfmpegError(f"ffmpeg ({codec}) did not run to the end: killed after {ENCODE_TIMEOUT_S} s")
    return returncode
