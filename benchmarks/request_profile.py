"""Where a request's time goes, for `gpu_pipeline.py --profile` (one handler, one size).

- `generate_spread`: the same request again and again, so that a first-vs-second difference can be
  read against the spread between warm requests.
- `output_shares`: one request per output format: the VAE decode + encode share of each.
- `trace_first_and_second`: traces of the first request at a size outside the warm-up and of the
  same request again.
- `python benchmarks/request_profile.py TRACE.json.gz`: the same summary of a saved trace.
- `profile_one_step`: a torch profiler trace of a two-step request (text encoding, two denoising
  steps, VAE decode, encode, base64), saved as a gzipped Chrome trace; the summary says per stage how
  long the GPU was busy, and which kinds of kernels took the GPU time.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch.autograd import DeviceType

KERNEL_KINDS = (  # first match wins: a kernel's name says what it computes
    ("Triton (fused by compile)", ("triton",)),  # before "conv": Triton names carry "convert_element_type"
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("convolution", ("convolv", "conv2d", "conv3d", "implicit", "winograd", "fprop", "dgrad")),
    ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "sm90_")),
    ("copies", ("copy", "memcpy", "memset", "cat", "fill")),
)


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, words in KERNEL_KINDS if any(w in lowered for w in words)), "other (eager)")


def generate_spread(handler: Any, inputs: dict, repeats: int) -> list[float]:
    """Generate seconds of `repeats` identical requests (GIF), in order."""
    seconds = []
    for _ in range(repeats):
        result = handler({"inputs": inputs})
        assert result["ok"], result
        seconds.append(result["diagnostics"]["timing_ms"]["generate"] / 1000)
    return seconds


def output_shares(handler: Any, inputs: dict, formats: list[str]) -> list[dict]:
    """One request per format: total, VAE decode, encode, base64 and the VAE + encode share."""
    rows = []
    for name in formats:
        result = handler({"inputs": {**inputs, "outputs": [name]}})
        if not result["ok"]:
            rows.append({"output": name, "error": result["error"]["message"]})
            continue
        t = result["diagnostics"]["timing_ms"]
        vae, enc, total = t["generate.vae_decode"] / 1000, t["encode"] / 1000, t["total"] / 1000
        rows.append({"output": name, "total_s": total, "vae_decode_s": vae, "encode_s": enc,
                     "base64_s": t.get("base64", 0) / 1000, "vae_encode_share": (vae + enc) / total,
                     "bytes": result["diagnostics"]["outputs"][name]["bytes"]})
    return rows


def _busy_us(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Length of the union of `intervals` clipped to [start, end]."""
    busy, reach = 0.0, start
    for a, b in sorted(intervals):
        a, b = max(a, reach), min(b, end)
        if b > a:
            busy += b - a
            reach = b
    return busy


def _kinds_ms(kernels: list[tuple[float, float, str]]) -> dict[str, float]:
    kinds: dict[str, float] = {}
    for a, b, name in kernels:
        kinds[kernel_kind(name)] = kinds.get(kernel_kind(name), 0.0) + (b - a) / 1000
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def phases(kernels: list[tuple[float, float, str]], start: float, end: float) -> list[dict]:
    """Split the generate stage [start, end] where the GPU's work changes: text encoding and set-up
    until the first transformer kernel (Triton or attention), denoising until the first convolution
    after it (the VAE), then the VAE decode and the copy to the host."""
    inside = [k for k in kernels if start <= k[0] <= end]
    transformer = next((k[0] for k in inside if kernel_kind(k[2]) in ("Triton (fused by compile)", "attention")),
                       None)
    if transformer is None:
        return []
    vae = next((k[0] for k in inside if k[0] > transformer and kernel_kind(k[2]) == "convolution"), end)
    rows = []
    for name, a, b in (("text encoding, set-up", start, transformer), ("denoising", transformer, vae),
                       ("VAE decode, to host", vae, end)):
        window = [k for k in inside if a <= k[0] < b]
        rows.append({"phase": name, "wall_ms": (b - a) / 1000,
                     "gpu_busy_ms": _busy_us([(x, y) for x, y, _ in window], a, b) / 1000,
                     "kernels": len(window), "kernel_ms_by_kind": _kinds_ms(window)})
    return rows


Kernel = tuple[float, float, str]  # start µs, end µs, name


def summarize(kernels: list[Kernel], stages: dict[str, tuple[float, float]],
              allocations: list[tuple[float, float]]) -> dict:
    """Per stage and per phase of generate: how long the GPU was busy; the GPU time by kernel
    kind, the top kernels, the longest GPU idle gaps, and the cudaMalloc/cudaFree calls."""
    kernels = sorted(kernels)
    intervals = [(a, b) for a, b, _ in kernels]
    stage_rows = [{"stage": name, "wall_ms": (b - a) / 1000, "gpu_busy_ms": _busy_us(intervals, a, b) / 1000}
                  for name, (a, b) in sorted(stages.items(), key=lambda kv: kv[1][0])]
    top: dict[str, list[float]] = {}
    for a, b, name in kernels:
        entry = top.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += (b - a) / 1000
    gaps, reach = [], None  # idle time between the end of all kernels so far and the next start
    for a, b, _ in kernels:
        if reach is not None and a > reach:
            gaps.append(((a - reach) / 1000, reach))
        reach = b if reach is None else max(reach, b)
    first = min((a for a, _ in intervals), default=0.0)
    return {
        "stages": stage_rows, "phases": phases(kernels, *stages["generate"]) if "generate" in stages else [],
        "kernel_ms_by_kind": _kinds_ms(kernels),
        "top_kernels": [{"kernel": name[:110], "count": int(c), "ms": ms}
                        for name, (c, ms) in sorted(top.items(), key=lambda kv: -kv[1][1])[:12]],
        "longest_gpu_idle_ms": [{"ms": ms, "at_ms": (at - first) / 1000} for ms, at in sorted(gaps)[-5:][::-1]],
        "cuda_malloc_free": {"count": len(allocations), "ms": sum(b - a for a, b in allocations) / 1000},
    }


def trace_request(handler: Any, request: dict, trace_path: Path) -> tuple[dict, dict]:
    """Run one request under the torch profiler; write the trace to `trace_path` (.json.gz).
    Returns the answer and the trace's `summarize`."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:  # sees this thread's stages: run here, not queued
        result = handler.deliver(handler.produce(handler.decode({"inputs": request})))
    assert result["ok"], result
    raw = trace_path.with_suffix("")  # x.json.gz -> x.json
    prof.export_chrome_trace(str(raw))
    with raw.open("rb") as source, gzip.open(trace_path, "wb") as target:
        shutil.copyfileobj(source, target)
    raw.unlink()

    events = prof.events()
    kernels = [(e.time_range.start, e.time_range.end, e.name) for e in events  # not the GPU-side copy of
               if e.device_type == DeviceType.CUDA and not e.name.startswith("stage.")  # a stage's name
               and e.time_range.end > e.time_range.start]
    stages = {e.name.removeprefix("stage."): (e.time_range.start, e.time_range.end) for e in events
              if e.name.startswith("stage.") and e.device_type == DeviceType.CPU}
    allocations = [(e.time_range.start, e.time_range.end) for e in events if e.name in ("cudaMalloc", "cudaFree")]
    return result, {
        "request": {k: request[k] for k in ("width", "height", "num_frames", "num_inference_steps")},
        "timing_ms": result["diagnostics"]["timing_ms"], **summarize(kernels, stages, allocations),
        "trace": trace_path.name,
    }


def summarize_chrome_trace(path: Path) -> dict:
    """`summarize` of a trace saved by `trace_request` (to read one again without a GPU)."""
    events = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    spans = [(e["ts"], e["ts"] + e.get("dur", 0), e) for e in events if "ts" in e]
    kernels = [(a, b, e["name"]) for a, b, e in spans if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    stages = {e["name"].removeprefix("stage."): (a, b) for a, b, e in spans
              if e.get("cat") == "user_annotation" and e["name"].startswith("stage.")}
    allocations = [(a, b) for a, b, e in spans if e.get("name") in ("cudaMalloc", "cudaFree")]
    return {**summarize(kernels, stages, allocations), "trace": path.name}


def profile_one_step(handler: Any, inputs: dict, trace_path: Path) -> dict:
    """Trace one request of two denoising steps (the fewest every scheduler takes)."""
    return trace_request(handler, {**inputs, "num_inference_steps": 2}, trace_path)[1]


def print_report(spread: list[float], first_s: float | None, shares: list[dict], profile: dict) -> None:
    if spread:
        ordered = sorted(spread)
        print(f"\ngenerate s of {len(spread)} more identical requests: {', '.join(f'{s:.3f}' for s in spread)} "
              f"(median {ordered[len(ordered) // 2]:.3f}, spread {ordered[-1] - ordered[0]:.3f})"
              + (f"; the first request at this size: {first_s:.3f}" if first_s is not None else ""))
    if shares:
        print("\n| output | request s | VAE decode s | encode s | base64 s | VAE + encode share | bytes |\n"
              "|---|---|---|---|---|---|---|")
        for r in shares:
            if "error" in r:
                print(f"| {r['output']} | failed: {r['error']} | | | | | |")
                continue
            print(f"| {r['output']} | {r['total_s']:.2f} | {r['vae_decode_s']:.2f} | {r['encode_s']:.2f} | "
                  f"{r['base64_s']:.3f} | {r['vae_encode_share']:.0%} | {r['bytes']:,} |")
    print_trace(profile)


def print_trace(profile: dict) -> None:
    size = profile.get("request")
    what = (f"one request of {size['num_inference_steps']} steps at {size['width']}x{size['height']}x"
            f"{size['num_frames']} " if size else "")
    print(f"\nprofile of {what}(trace {profile['trace']}):\n| stage or phase | wall ms | GPU busy ms | busy | "
          "GPU ms by kernel kind |\n|---|---|---|---|---|")
    for s in profile["stages"]:
        busy = s["gpu_busy_ms"] / s["wall_ms"] if s["wall_ms"] else 0.0
        print(f"| {s['stage']} | {s['wall_ms']:.1f} | {s['gpu_busy_ms']:.1f} | {busy:.0%} | |")
        if s["stage"] != "generate":
            continue
        for p in profile["phases"]:
            busy = p["gpu_busy_ms"] / p["wall_ms"] if p["wall_ms"] else 0.0
            kinds = ", ".join(f"{k} {v:.1f}" for k, v in p["kernel_ms_by_kind"].items())
            print(f"| - {p['phase']} | {p['wall_ms']:.1f} | {p['gpu_busy_ms']:.1f} | {busy:.0%} | {kinds} |")
    print(f"cudaMalloc/cudaFree calls: {profile['cuda_malloc_free']['count']}, "
          f"{profile['cuda_malloc_free']['ms']:.1f} ms")
    print("longest GPU idle gaps (ms at ms after the first kernel): "
          + ", ".join(f"{g['ms']:.1f} at {g['at_ms']:.0f}" for g in profile["longest_gpu_idle_ms"]))
    print("| kernel | count | ms |\n|---|---|---|")
    for k in profile["top_kernels"]:
        print(f"| `{k['kernel']}` | {k['count']} | {k['ms']:.1f} |")


def trace_first_and_second(handler: Any, inputs: dict, folder: Path, label: str) -> list[dict]:
    """The first request at a size outside the warm-up and the same request again, each traced:
    which stage or phase the first one loses its time in."""
    summaries = [trace_request(handler, inputs, folder / f"trace-{label}-{nth}.json.gz")[1]
                 for nth in ("first", "second")]
    first, second = summaries
    print(f"\nfirst vs second request at {inputs['width']}x{inputs['height']}x{inputs['num_frames']}, "
          f"{inputs['num_inference_steps']} steps (wall ms / GPU busy ms):\n| stage or phase | first | second |"
          "\n|---|---|---|")
    rows = [(s["stage"], s) for s in first["stages"]] + [(p["phase"], p) for p in first["phases"]]
    others = {**{s["stage"]: s for s in second["stages"]}, **{p["phase"]: p for p in second["phases"]}}
    for name, row in rows:
        other = others.get(name, {"wall_ms": float("nan"), "gpu_busy_ms": float("nan")})
        print(f"| {name} | {row['wall_ms']:.1f} / {row['gpu_busy_ms']:.1f} | "
              f"{other['wall_ms']:.1f} / {other['gpu_busy_ms']:.1f} |")
    malloc = [f"{x['cuda_malloc_free']['count']} calls, {x['cuda_malloc_free']['ms']:.1f} ms" for x in summaries]
    print(f"| cudaMalloc/cudaFree | {malloc[0]} | {malloc[1]} |")
    for summary in summaries:
        print_trace(summary)
    return summaries


if __name__ == "__main__":  # python benchmarks/request_profile.py TRACE.json.gz ...: read saved traces again
    for name in sys.argv[1:]:
        print_trace(summarize_chrome_trace(Path(name)))
