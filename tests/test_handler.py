"""handler.py as users run it: from a plain script that builds the handler at module level."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.media import decode_gif, decode_video

ROOT = Path(__file__).resolve().parents[1]

# What Hugging Face's custom-handler docs tell users to write: no `if __name__ == "__main__":`.
PLAIN_SCRIPT = """
import base64, sys
sys.path.insert(0, {root!r})
with open({runs!r}, "a") as runs:
    runs.write("run\\n")
from handler import EndpointHandler
from encoders import cores
handler = EndpointHandler({model!r})
small = {{"prompt": "a plain script", "num_frames": 24, "height": 64, "width": 96, "num_inference_steps": 2, "seed": 3}}
for outputs in (["gif"], ["mp4"]):
    answer = handler({{"inputs": {{**small, "outputs": outputs}}}})
    assert answer["ok"], answer
    with open({out!r} + "." + outputs[0], "wb") as file:
        file.write(base64.b64decode(answer["outputs"][outputs[0] + "_base64"]))
print("workers", *cores.process_pool().pids(), flush=True)
"""


def test_a_plain_script_that_builds_the_handler_runs_once(tiny_model_dir, tmp_path):
    """The GIF's worker processes start from a module of this project: they never re-run the
    user's script (multiprocessing's spawn did, loading the model again in each, with a
    bootstrapping traceback), and they end with it."""
    runs, out = tmp_path / "runs.txt", tmp_path / "answer"
    script = tmp_path / "test_handler_plain.py"
    script.write_text(PLAIN_SCRIPT.format(root=str(ROOT), runs=str(runs), model=str(tiny_model_dir), out=str(out)))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "VIDEO_ENCODE_THREADS": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert runs.read_text() == "run\n"
    assert "bootstrapping" not in done.stderr and "Traceback" not in done.stderr
    workers = [int(pid) for pid in done.stdout.split("workers", 1)[1].split()]
    assert len(workers) == 2  # the GIF went through them
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # and they ended with the script
    gif = decode_gif(Path(f"{out}.gif").read_bytes())
    assert gif.frames.shape == (24, 64, 96, 3)
    assert decode_video(Path(f"{out}.mp4").read_bytes()).frames.shape[0] == 24
