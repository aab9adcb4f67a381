"""A clip's soundtrack: fitted to the video's duration, muxed as AAC (MP4) and Opus (WebM), alone as
WAV, as audio.wav in the ZIP; decoded back with PyAV and checked for codec, rate, length and pitch."""

from __future__ import annotations

import io
import json
import wave
import zipfile

import numpy as np
import pytest

from encoders import gif, mp4, wav, webm
from encoders import zip as zip_format
from encoders.base import Audio, Clip
from tests.media import decode_audio, decode_gif, decode_video, synthetic_clip

RATE = 24000


def tone(seconds: float, hz: float = 440.0, channels: int = 2) -> Audio:
    t = np.arange(round(seconds * RATE)) / RATE
    left = 0.5 * np.sin(2 * np.pi * hz * t)
    samples = np.stack([left, 0.25 * np.sin(2 * np.pi * 2 * hz * t)][:channels]).astype(np.float32)
    return Audio(samples, RATE)


def pitch(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / sample_rate)[spectrum.argmax()])


def clip_with(audio: Audio | None, num_frames: int = 16, fps: int = 24) -> Clip:
    return Clip(synthetic_clip(num_frames), fps, {"seed": 1}, audio=audio)


def test_fitted_pads_or_cuts_to_the_sample():
    audio = tone(0.5)
    longer, shorter = audio.fitted(0.75), audio.fitted(0.25)
    assert longer.samples.shape == (2, 18000) and shorter.samples.shape == (2, 6000)
    np.testing.assert_array_equal(longer.samples[:, :12000], audio.samples)
    assert not longer.samples[:, 12000:].any()  # silence after the end
    np.testing.assert_array_equal(shorter.samples, audio.samples[:, :6000])


def test_wav_is_16_bit_pcm_of_the_samples():
    audio = tone(0.3)
    with wave.open(io.BytesIO(audio.wav())) as decoded:
        assert (decoded.getnchannels(), decoded.getsampwidth(), decoded.getframerate()) == (2, 2, RATE)
        pcm = np.frombuffer(decoded.readframes(decoded.getnframes()), "<i2").reshape(-1, 2).T / 32767
    np.testing.assert_allclose(pcm, audio.samples, atol=1 / 32767)


@pytest.mark.parametrize(("module", "codec", "rate"), [(mp4, "aac", RATE), (webm, "opus", 48000)])
@pytest.mark.parametrize("audio_seconds", [0.5, 0.9])  # shorter and longer than the 16 frames at 24 fps
def test_video_formats_carry_the_soundtrack_as_long_as_the_video(module, codec, rate, audio_seconds):
    clip = clip_with(tone(audio_seconds))
    data = module.encode(clip, module.Options())
    video, audio = decode_video(data), decode_audio(data)
    assert video.frames.shape[0] == 16
    assert (audio.codec, audio.sample_rate, audio.channels) == (codec, rate, 2)  # Opus always decodes at 48 kHz
    assert abs(audio.seconds - clip.seconds) <= 1 / clip.fps  # within one frame (AAC adds its priming)
    heard = audio.samples[0, int(0.1 * rate):int(0.4 * rate)]
    assert pitch(heard, rate) == pytest.approx(440, abs=10)
    assert pitch(audio.samples[1, int(0.1 * rate):int(0.4 * rate)], rate) == pytest.approx(880, abs=10)


def test_without_audio_the_video_formats_have_no_audio_stream():
    for module in (mp4, webm):
        with pytest.raises(AssertionError, match="no audio stream"):
            decode_audio(module.encode(clip_with(None), module.Options()))


def test_wav_output_is_the_soundtrack_at_the_clip_length():
    clip = clip_with(tone(0.9), num_frames=12, fps=12)
    audio = decode_audio(wav.encode(clip, wav.Options()))
    assert (audio.codec, audio.sample_rate, audio.channels, audio.samples.shape[1]) == ("pcm_s16le", RATE, 2, RATE)
    with pytest.raises(ValueError, match="no soundtrack"):
        wav.encode(clip_with(None), wav.Options())


def test_zip_holds_audio_wav_and_says_so_in_the_manifest_gif_ignores_it():
    clip = clip_with(tone(0.5))
    with zipfile.ZipFile(io.BytesIO(zip_format.encode(clip, zip_format.Options()))) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        audio = decode_audio(archive.read("audio.wav"))
    assert manifest["audio"] == {"file": "audio.wav", "sample_rate": RATE, "channels": 2, "seconds": clip.seconds}
    assert audio.samples.shape == (2, round(clip.seconds * RATE))
    with zipfile.ZipFile(io.BytesIO(zip_format.encode(clip_with(None), zip_format.Options()))) as archive:
        assert "audio.wav" not in archive.namelist() and "audio" not in json.loads(archive.read("manifest.json"))
    assert decode_gif(gif.encode(clip, gif.Options())).frames.shape[0] == 16
