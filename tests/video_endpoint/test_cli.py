from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import jpeg_base64
from tests.media import decode_gif, decode_video
from video_endpoint import cli


def test_generate_writes_each_file_by_extension(tiny_model_dir, tmp_path, capsys):
    image = tmp_path / "in.jpg"
    image.write_bytes(base64.b64decode(jpeg_base64()))
    gif, webm = tmp_path / "out.gif", tmp_path / "out.webm"
    code = cli.main(["generate", "--model", str(tiny_model_dir), "--prompt", "waves", "--frames", "10",
                     "--fps", "10", "--height", "64", "--width", "96", "--steps", "2", "--seed", "3",
                     "--image", str(image), "-o", str(gif), str(webm)])
    assert code == 0
    printed = capsys.readouterr()
    diagnostics = json.loads(printed.out)
    assert diagnostics["mode"] == "i2v" and diagnostics["seed"] == 3
    assert [line for line in printed.err.splitlines() if line.startswith("wrote")] == [
        f"wrote {gif}", f"wrote {webm}"]  # once each (it was twice)
    assert decode_gif(gif.read_bytes()).frames.shape == (10, 64, 96, 3)
    assert decode_video(webm.read_bytes()).frames.shape == (10, 64, 96, 3)


def test_bad_flag_value_is_reported_not_raised(tiny_model_dir, tmp_path, capsys):
    code = cli.main(["generate", "--model", str(tiny_model_dir), "--prompt", "x", "--height", "100",
                     "-o", str(tmp_path / "o.gif")])
    assert code == 1
    assert '"field": "height"' in capsys.readouterr().err
    assert not (tmp_path / "o.gif").exists()


def test_quality_reaches_every_video_output(tiny_model_dir, tmp_path):
    """--quality sets the preset of MP4 as well as WebM (it used to reach WebM only, and an MP4 came
    out at the default preset whatever was asked)."""
    sizes = {}
    for quality in ("fast", "best"):
        mp4, webm = tmp_path / f"{quality}.mp4", tmp_path / f"{quality}.webm"
        assert cli.main(["generate", "--model", str(tiny_model_dir), "--prompt", "waves", "--frames", "9",
                         "--height", "64", "--width", "96", "--steps", "2", "--seed", "3", "--quality", quality,
                         "-o", str(mp4), str(webm)]) == 0
        for path in (mp4, webm):
            assert decode_video(path.read_bytes()).frames.shape == (9, 64, 96, 3)
        sizes[quality] = (len(mp4.read_bytes()), len(webm.read_bytes()))
    # the same frames at a higher quality (lower CRF) take more bytes, in both formats
    assert sizes["best"][0] > sizes["fast"][0] and sizes["best"][1] > sizes["fast"][1], sizes


@pytest.mark.parametrize("problem", ["missing directory", "directory as output", "missing image", "second output"])
def test_file_problems_are_one_line_before_any_generation(tmp_path, capsys, monkeypatch, problem):
    """Each used to end in a traceback after the whole generation (and, with two outputs, after
    writing the first). Now: exit 2, one line, no model loaded, nothing written."""
    from video_endpoint import endpoint

    monkeypatch.setattr(endpoint, "EndpointHandler", None)  # loading a model would fail the test
    good = tmp_path / "good.gif"
    args = {"missing directory": ["-o", str(tmp_path / "nowhere" / "out.gif")],
            "directory as output": ["-o", str(tmp_path)],
            "missing image": ["--image", str(tmp_path / "missing.jpg"), "-o", str(good)],
            "second output": ["-o", str(good), str(tmp_path / "nowhere" / "out.webm")]}[problem]
    code = cli.main(["generate", "--model", "tiny", "--prompt", "x", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not good.exists()


def test_lora_flags_reach_the_request(tiny_model_dir, tmp_path, capsys):
    import shutil

    from pipelines.tiny.loras import write_tiny_lora
    from tests.media import decode_zip

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    write_tiny_lora(model, "style")
    common = ["generate", "--model", str(model), "--prompt", "waves", "--frames", "9", "--height", "64",
              "--width", "96", "--steps", "2", "--seed", "3"]
    assert cli.main([*common, "-o", str(tmp_path / "plain.zip")]) == 0
    assert json.loads(capsys.readouterr().out)["loras"] == []
    assert cli.main([*common, "--lora", "style=0.5", "-o", str(tmp_path / "styled.zip")]) == 0
    assert json.loads(capsys.readouterr().out)["loras"] == [{"name": "style", "scale": 0.5}]
    plain, styled = (decode_zip((tmp_path / f"{n}.zip").read_bytes()).frames for n in ("plain", "styled"))
    assert plain.shape == styled.shape and (plain != styled).any()
    with pytest.raises(SystemExit) as exited:
        cli.main([*common, "--lora", "style=strong"])
    assert exited.value.code == 2 and "must be a number" in capsys.readouterr().err


def test_conditioning_flags_reach_the_request(tiny_model_dir, tmp_path, capsys):
    from tests.media import encoded_video, synthetic_clip

    last, middle, clip = tmp_path / "last.jpg", tmp_path / "middle.jpg", tmp_path / "clip.mp4"
    last.write_bytes(base64.b64decode(jpeg_base64()))
    middle.write_bytes(base64.b64decode(jpeg_base64(64, 64)))
    clip.write_bytes(encoded_video(synthetic_clip(24, 64, 96), 12))
    common = ["generate", "--model", str(tiny_model_dir), "--prompt", "waves", "--frames", "9", "--height", "64",
              "--width", "96", "--steps", "2", "--seed", "3", "--fps", "12"]
    runs = {"keyframes": ["--last-image", str(last), "--keyframe", f"4:{middle}:0.5"],
            "v2v": ["--video", str(clip), "--strength", "0.5"], "extend": ["--extend", str(clip)]}
    for mode, flags in runs.items():
        out = tmp_path / f"{mode}.gif"
        assert cli.main([*common, *flags, "-o", str(out)]) == 0, capsys.readouterr().err
        diagnostics = json.loads(capsys.readouterr().out)
        assert diagnostics["mode"] == mode and decode_gif(out.read_bytes()).frames.shape == (9, 64, 96, 3)
        if mode == "keyframes":
            assert diagnostics["conditioning"]["keyframes"] == [{"frame": 4, "strength": 0.5}]
        if mode == "v2v":
            assert diagnostics["conditioning"]["video"]["strength"] == 0.5
    with pytest.raises(SystemExit) as usage:  # argparse's own usage error
        cli.main([*common, "--keyframe", "four:x.png", "-o", str(tmp_path / "x.gif")])
    assert usage.value.code == 2 and "FRAME:PATH" in capsys.readouterr().err


def test_generate_with_url_imports_neither_torch_nor_diffusers(tmp_path):
    """As a client the CLI needs no model: it used to import both before looking at --url (6.6 s of
    a 0.4 s call measured on the 2-core machine)."""
    import subprocess
    import sys

    argv = ["generate", "--url", "http://127.0.0.1:9", "--prompt", "x", "-o", str(tmp_path / "o.gif")]
    script = (f"import sys; from video_endpoint import cli; code = cli.main({argv!r}); "
              "print(code, 'torch' in sys.modules, 'diffusers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["1", "False", "False"], done.stdout + done.stderr
    assert "error:" in done.stderr  # nothing listens on port 9: said in one line
