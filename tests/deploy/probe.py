"""Run by an emulated container's Python (tests/deploy/), not collected by pytest: loads each tiny
checkpoint with the repository's handler, and sends one small request per mode it serves (with
`last_image` too where the checkpoint makes only first-and-last-frame videos). Prints
one JSON line per request with the handler's answer. The handler file is imported the toolkit's way
(the repository first on sys.path), or with --by-path hf-serve's way (by file path, the repository
not on sys.path).

    python probe.py [--by-path] REPO_DIR '{"tiny-wan": "/path/to/tiny-wan", ...}'
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import sys

from PIL import Image


def main() -> None:
    by_path = sys.argv[1] == "--by-path"
    repo, models = sys.argv[1 + by_path], json.loads(sys.argv[2 + by_path])
    if by_path:
        spec = importlib.util.spec_from_file_location("handler", os.path.join(repo, "handler.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        EndpointHandler = module.EndpointHandler
    else:
        sys.path.insert(0, repo)  # the toolkit puts the repository first on the path, then imports handler.py
        from handler import EndpointHandler

    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 120, 40)).save(buffer, format="JPEG")
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    for model_id, directory in models.items():
        handler = EndpointHandler(directory)
        for mode in handler.model.modes:
            inputs = {"prompt": "a cat walking", "height": 64, "width": 96, "num_frames": 9,
                      "num_inference_steps": 2, "seed": 1, "outputs": ["zip"]}
            if mode == "i2v":
                inputs["image"] = image
            result = handler({"inputs": inputs})
            if not result["ok"] and result["error"]["field"] == "last_image":  # a first-and-last-frame checkpoint
                mode, result = "flf2v", handler({"inputs": {**inputs, "last_image": image}})
            print(json.dumps({"model": model_id, "mode": mode, "result": result}), flush=True)


if __name__ == "__main__":
    main()
