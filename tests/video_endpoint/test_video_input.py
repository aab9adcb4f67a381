"""Input videos (`video`, `extend`): decoded apart from the server, fitted to the request, and
every hostile file refused by field before anything is decoded."""

from __future__ import annotations

import base64
import io
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPORT
from tests.media import decode_gif, encoded_video, psnr, synthetic_clip
from video_endpoint.errors import Cancelled, InvalidRequest
from video_endpoint.request_schema import Limits
from video_endpoint.video_input import read_video

ROOT = Path(__file__).resolve().parents[2]
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
    # the rate is the packets' own: frames over their span (WebM keeps milliseconds: 42, 41, 42, ... ms)
    assert (video.container, video.source_size) == ({"mp4": "MP4", "webm": "WebM", "gif": "GIF"}[fmt], (96, 64))
    assert video.source_fps == pytest.approx(24, rel=0.002)
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


def _ffmpeg(*args: str, suffix: str = ".mp4") -> bytes:
    """A file made by ffmpeg with `args` (an MP4 unless `suffix` says otherwise)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "made" + suffix)
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *args, path],
                       capture_output=True, check=True)
        with open(path, "rb") as made:
            return made.read()


def _hostile() -> dict[str, tuple[bytes, str]]:
    mp4, gif = (encoded_video(SOURCE, 24, fmt) for fmt in ("mp4", "gif"))
    png = io.BytesIO()
    Image.fromarray(SOURCE[0]).save(png, "PNG")
    huge = bytearray(gif)
    huge[6:10] = struct.pack("<HH", 65535, 65535)  # the screen descriptor claims 65,535 x 65,535
    audio_only = _ffmpeg("-f", "lavfi", "-i", "anullsrc", "-t", "1", "-c:a", "aac", "-movflags", "frag_keyframe")
    mjpeg = _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-t", "1", "-c:v", "mjpeg", "-movflags",
                    "frag_keyframe")
    return {
        "truncated MP4": (mp4[: len(mp4) // 2], "truncated or corrupt"),
        "MP4 cut short at the end": (mp4[: len(mp4) - 200], "truncated or corrupt"),
        "truncated GIF": (gif[: len(gif) // 2], "truncated or corrupt"),
        "wrong magic": (b"\x00" * 8 + mp4[8:], "not an MP4, WebM or GIF"),
        "65535 x 65535 header": (bytes(huge), "65535x65535"),
        "100,000 frames": (_gif_of(100_000), "more than 3600 frames"),
        **_forged(),
        "no video stream": (audio_only, "no video stream"),
        "two minutes of sound alone": (_ffmpeg("-f", "lavfi", "-i", "sine", "-t", "120", "-c:a", "aac"),
                                       "no video stream"),  # its 5,000 packets are no frames
        "unsupported codec": (mjpeg, "codec mjpeg"),
        "really an image": (png.getvalue(), "still image (PNG)"),
        "a one-frame GIF": (encoded_video(SOURCE[:1], 24, "gif"), "one frame"),
        "GIF header on an MP4": (b"GIF89a" + mp4[6:], "pixels a frame"),  # its screen descriptor: junk
        "MP4 box on a PNG": (b"\x00\x00\x00\x18ftypisom" + png.getvalue(), "not a readable MP4"),
    }


# A metadata key that writes a whole header into ffmpeg's log (keys are printed unescaped):
# what the header check read before it read the packets.
FORGED_KEY = ("a\n  Duration: 00:00:01.00, start: 0.000000, bitrate: 1 kb/s\n  Stream #0:0: Video: h264 (High), "
              "yuv420p, 64x64, 8 fps, 8 tbr\n#codec_id 0: h264\n#dimensions 0: 64x64\nb")


def _forged() -> dict[str, tuple[bytes, str]]:
    """The security review's recipes: forged header lines, and timestamps that lie about length."""
    forged = ["-movflags", "use_metadata_tags", "-metadata", f"{FORGED_KEY}=v"]
    testsrc = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=8"]
    jump = _ffmpeg(*testsrc, "-frames:v", "3", "-vf", "settb=1,setpts='N*100000'", "-fps_mode", "passthrough",
                   "-c:v", "libx264", "-pix_fmt", "yuv420p", "-video_track_timescale", "1", *forged)
    # Matroska whose Segment Info says 1 s over frames 100,000 s apart
    lying = bytearray(_ffmpeg(*testsrc, "-frames:v", "3", "-vf", "settb=1/1000,setpts='N*100000000'",
                              "-fps_mode", "passthrough", "-c:v", "libvpx", suffix=".webm"))
    at = lying.find(b"\x44\x89\x88")  # Segment Info Duration, an 8-byte float (milliseconds)
    assert at > 0
    lying[at + 3:at + 11] = struct.pack(">d", 1000.0)
    return {
        "MJPEG under a forged h264 header": (_ffmpeg(*testsrc, "-t", "2", "-c:v", "mjpeg", *forged), "codec mjpeg"),
        "PNG frames under a forged header": (_ffmpeg(*testsrc, "-t", "2", "-c:v", "png", *forged), "codec png"),
        "100 s at 1000 fps under a forged header": (
            _ffmpeg("-f", "lavfi", "-i", "color=size=16x16:rate=1000", "-t", "100", "-c:v", "libx264",
                    "-preset", "ultrafast", *forged), "more than 3600 frames"),
        "7680x4320 under a forged header": (
            _ffmpeg("-f", "lavfi", "-i", "color=size=7680x4320:rate=8", "-frames:v", "2", "-c:v", "libx264",
                    "-preset", "ultrafast", *forged), "7680x4320"),
        "frames 100,000 s apart under a forged header": (jump, "more than 60 s"),
        "a WebM whose header says 1 s over frames 100,000 s apart": (bytes(lying), "more than 60 s"),
        "two video streams": (_ffmpeg(*testsrc, *testsrc, "-map", "0", "-map", "1", "-t", "1", "-c:v", "libx264"),
                              "2 video streams"),
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


def test_an_input_folder_a_killed_process_left_is_swept_at_the_next_start(tmp_path):
    from video_endpoint import video_input

    code = (f"import os, sys, tempfile; sys.path.insert(0, {str(ROOT)!r}); from video_endpoint import video_input; "
            "print(tempfile.mkdtemp(prefix=video_input.INPUT_FOLDER_PREFIX + f'{os.getpid()}-', "
            f"dir={str(tmp_path)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    left = Path(done.stdout.strip())
    (left / "input").write_bytes(b"a client's video")
    mine = Path(tempfile.mkdtemp(prefix=f"{video_input.INPUT_FOLDER_PREFIX}{os.getpid()}-", dir=tmp_path))
    assert video_input.remove_stale_input_folders(str(tmp_path)) == [str(left)]
    assert not left.exists() and mine.exists()  # this process runs: its folder stays


def _four_k_minute(folder: Path) -> bytes:
    """The security review's honest file: 3840x2160 at 60 fps for 60 s (3,600 frames, about 800 KB),
    within every per-file limit: 2 s encoded once, then repeated 30 times without re-encoding."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    part = folder / "part.mp4"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=gray:size=3840x2160:rate=60", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", str(part)], check=True)
    (folder / "list.txt").write_text("".join(f"file '{part}'\n" for _ in range(30)))
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i",
                    str(folder / "list.txt"), "-c", "copy", str(folder / "minute.mp4")], check=True)
    return (folder / "minute.mp4").read_bytes()


def test_a_video_costs_what_its_answer_uses(tmp_path):
    """A 4K60 minute used to be decoded whole (18 s here) to answer 8 frames: now the frames used are
    decoded, and a whole-clip read over VIDEO_MAX_INPUT_DECODE_PIXELS is refused before decoding."""
    clip = text(_four_k_minute(tmp_path))
    started = time.perf_counter()
    video = read_video(clip, "video", 96, 64, 12, Limits(), count=24)
    used = time.perf_counter() - started
    assert len(video.frames) == 24 and video.source_size == (3840, 2160) and video.duration_s == pytest.approx(60)
    started = time.perf_counter()
    with pytest.raises(InvalidRequest, match="VIDEO_MAX_INPUT_DECODE_PIXELS") as refused:
        read_video(clip, "extend", 96, 64, 12, Limits(), count=8, keep="last")
    assert refused.value.field == "extend" and time.perf_counter() - started < 5
    assert used < 15, used
    REPORT.append(f"4K60 60 s input video: 24 frames at 12 fps read in {used:.2f} s; the whole clip refused in "
                  f"{time.perf_counter() - started:.2f} s")


def test_a_reading_stops_at_once_when_its_client_goes(tmp_path):
    import psutil

    clip = text(_four_k_minute(tmp_path))
    cancelled = threading.Event()
    threading.Timer(1.0, cancelled.set).start()
    started = time.perf_counter()
    with pytest.raises(Cancelled) as stopped:
        read_video(clip, "extend", 96, 64, 12, Limits(max_video_decode_pixels=10**12), count=8, keep="last",
                   cancelled=cancelled)
    assert stopped.value.field == "extend" and time.perf_counter() - started < 4
    assert not [child for child in psutil.Process().children(recursive=True) if "ffmpeg" in " ".join(child.cmdline())]


def test_a_soundtrack_beside_the_video_is_left_alone():
    """Its decoder is never opened (only the container's video codecs may be): the video is read."""
    with_sound = _ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=24", "-f", "lavfi", "-i", "sine", "-t", "1",
                         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac")
    video = read_video(text(with_sound), "video", 96, 64, 12, Limits(), count=8)
    assert len(video.frames) == 8 and video.codec == "h264"


def test_the_decode_budget_counts_the_frames_the_request_spans_not_an_average():
    """299 frames in the first 0.3 s and one at 59 s average 5 fps; the first 0.75 s (8 frames at
    12 fps) still decodes 299 of them, and that is what is counted."""
    bunched = _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25", "-frames:v", "300", "-vf",
                      "settb=1/1000,setpts='if(lt(N,299),N,59000)'", "-fps_mode", "passthrough", "-c:v", "libx264",
                      "-preset", "ultrafast", "-video_track_timescale", "1000")
    with pytest.raises(InvalidRequest, match=r"decode 2\d\d frames of 64x64"):
        read_video(text(bunched), "video", 96, 64, 12, Limits(max_video_decode_pixels=100_000), count=8)
    assert len(read_video(text(bunched), "video", 96, 64, 12, Limits(), count=8).frames) == 8
