"""A real browser plays what we encode: headless Chromium loads the WebM and the MP4 in <video>
elements and the GIF in an <img>, and reports back what it sees."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from encoders import gif, mp4, webm
from encoders.base import Clip
from tests.media import synthetic_clip

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

PAGE = """<!doctype html>
<video id="webm" src="clip.webm" muted playsinline preload="auto"></video>
<video id="mp4" src="clip.mp4" muted playsinline preload="auto"></video>
<img id="gif" src="clip.gif">
<script>
async function probe(video) {
  try { await video.play(); } catch (e) { return {error: String(e), code: video.error && video.error.code}; }
  const start = video.currentTime;
  await new Promise(resolve => setTimeout(resolve, 700));
  return {readyState: video.readyState, duration: video.duration, width: video.videoWidth,
          height: video.videoHeight, advanced: video.currentTime > start};
}
window.addEventListener("load", async () => {
  const image = document.getElementById("gif");
  const result = {webm: await probe(document.getElementById("webm")),
                  mp4: await probe(document.getElementById("mp4")),
                  gif: {width: image.naturalWidth, height: image.naturalHeight, complete: image.complete}};
  await fetch("/result", {method: "POST", body: JSON.stringify(result)});
});
</script>
"""


class _Handler(SimpleHTTPRequestHandler):
    results: ClassVar[list] = []

    def do_POST(self) -> None:  # the page reports here
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.results.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_chromium_plays_webm_and_mp4_and_shows_the_gif(tmp_path):
    frames = synthetic_clip(24, 64, 96)  # 2.00 s at 12 fps
    clip = Clip(frames, fps=12)
    (tmp_path / "clip.webm").write_bytes(webm.encode(clip, webm.Options()))
    (tmp_path / "clip.mp4").write_bytes(mp4.encode(clip, mp4.Options()))
    (tmp_path / "clip.gif").write_bytes(gif.encode(clip, gif.Options()))
    (tmp_path / "page.html").write_text(PAGE)
    handler = type("Handler", (_Handler,), {"results": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/page.html"
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if handler.results or browser.poll() is not None:
                break
            threading.Event().wait(0.1)
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
    assert handler.results, "the page never reported back"
    result = handler.results[0]
    for name in ("webm", "mp4"):
        video = result[name]
        assert "error" not in video, (name, video)
        assert video["readyState"] >= 2, (name, video)
        assert video["duration"] == pytest.approx(2.0, abs=0.1), (name, video)
        assert (video["width"], video["height"]) == (96, 64), (name, video)
        assert video["advanced"], (name, video)
    assert result["gif"] == {"width": 96, "height": 64, "complete": True}
