"""Input videos (`video`, `extend`): decoded apart from the server, fitted to the request, and
every hostile file refused by field before anything is decoded."""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import time

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPORT
from tests.media import decode_gif, encoded_video, psnr, synthetic_clip
from video_endpoint.errors import InvalidRequest
from video_endpoint.request_schema import Limits
from video_endpoint.video_input import read_video

SOURCE = synthetic_clip(24, 64, 96, seed=5)  # 24 frames, played at 24 fps: one second


def text(data: bytes) -> str:
    return base64.b64encode(data).decode()


def best_match(frame: np.ndarray) -> tuple[int, float]:
    scores = [psnr(frame, source) for source in SOURCE]
    return int(np.argmax(scores)), max(scores)


@pytest.mark.parametrize("fps", [24, 12, 8])
@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_each_container_decodes_to_the_request_s_size_and_rate(fmt, fps):
    data = encoded_video(SOURCE, 24, fmt)
    video = read_video(text(data), "video", 96, 64, fps, Limits(), count=8)
    assert len(video.frames) == 8 and {frame.size for frame in video.frames} == {(96, 64)}
    # a GIF keeps delays in centiseconds (24 fps is 4, 4, 5, ...): ffmpeg's header reads 25 fps
    assert (video.container, video.source_size, video.source_fps) == (
        {"mp4": "MP4", "webm": "WebM", "gif": "GIF"}[fmt], (96, 64), 25.0 if fmt == "gif" else 24.0)
    # frame n is the source frame on screen at n / fps: from the file's own timing (a GIF's
    # delays are whole centiseconds, so its frames start at 0, 40, 80, 130 ms ...)
    starts = np.arange(24) / 24
    if fmt == "gif":
        starts = np.concatenate([[0], np.cumsum(decode_gif(data).durations_ms)[:-1]]) / 1000
    expected = [int(np.searchsorted(starts, n / fps + 1e-6, side="right")) - 1 for n in range(8)]
    matches = [best_match(np.asarray(frame)) for frame in video.frames]
    assert [index for index, _ in matches] == expected
    assert min(score for _, score in matches) > 24, matches


def test_extend_keeps_the_last_frames():
    video = read_video(text(encoded_video(SOURCE, 24, "mp4")), "extend", 96, 64, 24, Limits(), count=5, keep="last")
    assert [best_match(np.asarray(frame))[0] for frame in video.frames] == [19, 20, 21, 22, 23]
    assert video.describe()["frames_used"] == 5


def test_frames_are_fitted_like_images_cover_then_centre_crop():
    wide = np.zeros((12, 64, 192, 3), np.uint8)
    wide[:, :, 64:128] = 255  # the centre third white: what a 64x64 crop keeps
    video = read_video(text(encoded_video(wide, 12, "mp4")), "video", 64, 64, 12, Limits(), count=4)
    centre = np.asarray(video.frames[0]).astype(int)
    assert centre.shape == (64, 64, 3) and centre[:, 8:56].mean() > 240


def _gif_of(frames: int) -> bytes:
    """A real GIF of `frames` 1x1 frames at 100 fps (10 ms each): 23 bytes a frame."""
    head = b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x21\xf9\x04\x00\x01\x00\x00\x00\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02\x02\x44\x01\x00"
    return head + frame * frames + b"\x3b"


def _ffmpeg(*args: str) -> bytes:
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *args,
                           "-f", "mp4", "pipe:1"], capture_output=True, check=True)
    return done.stdout


def _hostile() -> dict[str, tuple[bytes, str]]:
    mp4, gif, webm = (encoded_video(SOURCE, 24, fmt) for fmt in ("mp4", "gif", "webm"))
    png = io.BytesIO()
    Image.fromarray(SOURCE[0]).save(png, "PNG")
    huge = bytearray(gif)
    huge[6:10] = struct.pack("<HH", 65535, 65535)  # the screen descriptor claims 65,535 x 65,535
    long_webm = bytearray(webm)
    at = long_webm.find(b"\x44\x89\x88")  # Segment Info Duration, an 8-byte float (milliseconds)
    long_webm[at + 3:at + 11] = struct.pack(">d", 4_000_000.0)
    audio_only = _ffmpeg("-f", "lavfi", "-i", "anullsrc", "-t", "1", "-c:a", "aac", "-movflags", "frag_keyframe")
    mjpeg = _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-t", "1", "-c:v", "mjpeg", "-movflags",
                    "frag_keyframe")
    return {
        "truncated MP4": (mp4[: len(mp4) // 2], "truncated or corrupt"),
        "MP4 cut short at the end": (mp4[: len(mp4) - 200], "truncated or corrupt"),
        "truncated GIF": (gif[: len(gif) // 2], "truncated or corrupt"),
        "wrong magic": (b"\x00" * 8 + mp4[8:], "not an MP4, WebM or GIF"),
        "65535 x 65535 header": (bytes(huge), "65535x65535"),
        "100,000 frames": (_gif_of(100_000), "1000.0 s"),
        "4000 s WebM": (bytes(long_webm), "4000.0 s"),
        "no video stream": (audio_only, "no video stream"),
        "unsupported codec": (mjpeg, "codec mjpeg"),
        "really an image": (png.getvalue(), "still image (PNG)"),
        "a one-frame GIF": (encoded_video(SOURCE[:1], 24, "gif"), "one frame"),
        "GIF header on an MP4": (b"GIF89a" + mp4[6:], "not a readable GIF"),
        "MP4 box on a PNG": (b"\x00\x00\x00\x18ftypisom" + png.getvalue(), "not a readable MP4"),
    }


def test_hostile_videos_are_refused_by_field_at_once():
    timings = []
    for name, (data, reason) in _hostile().items():
        for field in ("video", "extend"):
            started = time.perf_counter()
            with pytest.raises(InvalidRequest) as refused:
                read_video(text(data), field, 96, 64, 12, Limits(), count=8)
            elapsed = time.perf_counter() - started
            assert refused.value.field == field and reason in refused.value.message, (name, refused.value.message)
            assert elapsed < 1.0, (name, elapsed)
            timings.append((elapsed, name))
    slowest = max(timings)
    REPORT.append(f"hostile input videos: {len(timings)} refused, slowest {slowest[0] * 1000:.0f} ms ({slowest[1]})")


def test_limits_are_read_from_the_header():
    one_second = text(encoded_video(SOURCE, 24, "mp4"))
    cases = {"VIDEO_MAX_INPUT_VIDEO_FRAMES": Limits(max_video_frames=20),
             "VIDEO_MAX_INPUT_VIDEO_PIXELS": Limits(max_video_frame_pixels=96 * 64 - 1),
             "VIDEO_MAX_INPUT_PIXEL_RATE": Limits(max_video_pixel_rate=96 * 64 * 23),
             "VIDEO_MAX_INPUT_VIDEO_BYTES": Limits(max_video_bytes=1000)}
    for setting, limits in cases.items():
        with pytest.raises(InvalidRequest, match=setting):
            read_video(one_second, "video", 96, 64, 12, limits, count=8)


def test_a_decode_that_runs_out_of_time_is_refused():
    with pytest.raises(InvalidRequest, match="VIDEO_INPUT_DECODE_TIMEOUT_S") as refused:
        read_video(text(encoded_video(SOURCE, 24, "mp4")), "video", 96, 64, 12, Limits(video_decode_timeout_s=0),
                   count=8)
    assert refused.value.field == "video"


def test_videos_are_read_two_at_a_time_and_a_third_waits_then_is_busy():
    from video_endpoint import video_input
    from video_endpoint.errors import Busy

    clip = text(encoded_video(SOURCE, 24, "mp4"))
    for _ in range(2):  # both readers taken, as by two long decodes
        assert video_input._READERS.acquire(timeout=1)
    try:
        started = time.perf_counter()
        with pytest.raises(Busy) as busy:
            read_video(clip, "extend", 96, 64, 12, Limits(video_decode_timeout_s=1), count=4)
        assert busy.value.field == "extend" and 0.9 < time.perf_counter() - started < 3
    finally:
        video_input._READERS.release()
        video_input._READERS.release()
    assert len(read_video(clip, "extend", 96, 64, 12, Limits(), count=4).frames) == 4  # free again
