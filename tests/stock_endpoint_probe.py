"""Run by the emulated stock Endpoint's Python (tests/test_stock_endpoint.py), not collected by
pytest: loads each tiny checkpoint with the repository's handler, as the toolkit would, and sends
one small request per mode it serves. Prints one JSON line per request with the handler's answer.

    python stock_endpoint_probe.py REPO_DIR '{"tiny-wan": "/path/to/tiny-wan", ...}'
"""

from __future__ import annotations

import base64
import io
import json
import sys

from PIL import Image


def main() -> None:
    repo, models = sys.argv[1], json.loads(sys.argv[2])
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
            print(json.dumps({"model": model_id, "mode": mode, "result": handler({"inputs": inputs})}), flush=True)


if __name__ == "__main__":
    main()
