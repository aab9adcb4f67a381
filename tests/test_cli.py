from __future__ import annotations

import base64
import json

import cli
from tests.conftest import jpeg_base64
from tests.media import decode_gif, decode_video


def test_generate_writes_each_file_by_extension(tiny_model_dir, tmp_path, capsys):
    image = tmp_path / "in.jpg"
    image.write_bytes(base64.b64decode(jpeg_base64()))
    gif, webm = tmp_path / "out.gif", tmp_path / "out.webm"
    code = cli.main(["generate", "--model", str(tiny_model_dir), "--prompt", "waves", "--frames", "10",
                     "--fps", "10", "--height", "64", "--width", "96", "--steps", "2", "--seed", "3",
                     "--image", str(image), "-o", str(gif), str(webm)])
    assert code == 0
    diagnostics = json.loads(capsys.readouterr().out)
    assert diagnostics["mode"] == "i2v" and diagnostics["seed"] == 3
    assert decode_gif(gif.read_bytes()).frames.shape == (10, 64, 96, 3)
    assert decode_video(webm.read_bytes()).frames.shape == (10, 64, 96, 3)


def test_bad_flag_value_is_reported_not_raised(tiny_model_dir, tmp_path, capsys):
    code = cli.main(["generate", "--model", str(tiny_model_dir), "--prompt", "x", "--height", "100",
                     "-o", str(tmp_path / "o.gif")])
    assert code == 1
    assert '"field": "height"' in capsys.readouterr().err
    assert not (tmp_path / "o.gif").exists()
