"""The plain diffusers recipe vs this handler, end to end, side by side in one run.

    .venv/bin/python benchmarks/gpu_pipeline.py                 # CPU: the tiny model, small sizes
    .venv/bin/python benchmarks/gpu_pipeline.py --model tiny-wan
    python benchmarks/gpu_pipeline.py --model ltx-2b --out docs/gpu.json   # GPU: LTX-Video 2B shape
    python benchmarks/gpu_pipeline.py --model wan-1.3b --sizes 832x480x81

`ltx-2b` builds LTX-Video 2B with random weights from the real configs (the diffusers classes'
defaults are the 2B model: 28 blocks of width 2048; the 0.9.0 VAE; a T5-XXL-sized encoder);
`wan-1.3b` builds Wan 2.1 T2V 1.3B (30 blocks of width 1536, the Wan 2.1 VAE in float32, a
UMT5-XXL-sized encoder). Each is saved as a diffusers checkpoint and loaded back through the
handler's real loading path: honest timings without downloads (random weights make noise; the
work per step is the real one).

Per request size it prints: the plain recipe (`from_pretrained(torch_dtype=bf16).to("cuda")`, call, export
a GIF with diffusers' `export_to_gif`) and the handler (bf16, regional compile + warm-up on CUDA,
GIF encode, base64) with per-stage times (text encoding timed on its own), seconds per step,
transformer MFU from the FLOP formula (printed), peak memory, the first request after start-up
beside the second, and how close the handler's frames are to the plain recipe's (same seed); the
cold start (process start to first answer); and, at the first size, the first-block step cache's
speed and quality cost (PSNR/SSIM of its frames against the uncached frames, same seed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import diffusers  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import DiffusionPipeline  # noqa: E402
from diffusers.utils import export_to_gif  # noqa: E402

from handler import EndpointHandler  # noqa: E402
from pipelines import tiny  # noqa: E402
from tests.media import psnr, ssim, zip_frames  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}  # dense, vendor sheets


def build_ltx_2b(directory: Path) -> Path:
    """LTX-Video 2B with random weights, saved in bf16 as a diffusers checkpoint."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    from pipelines.tiny import _parts as _tiny_parts

    if (directory / "model_index.json").is_file():
        return directory
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        transformer = LTXVideoTransformer3DModel().to(torch.bfloat16)
        vae = AutoencoderKLLTXVideo().to(torch.bfloat16)
        text_encoder = T5EncoderModel(T5Config(  # t5-v1_1-xxl's shape
            vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
            feed_forward_proj="gated-gelu", is_gated_act=True)).to(torch.bfloat16)
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096)
    pipe = LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                       tokenizer=_tiny_parts.t5_tokenizer(), transformer=transformer)
    pipe.save_pretrained(directory, safe_serialization=True)
    (directory / tiny.MARKER).write_text("LTX-Video 2B shape, random weights: output is noise.\n")
    return directory


def build_wan_1_3b(directory: Path) -> Path:
    """Wan 2.1 T2V 1.3B with random weights (bf16 transformer and text encoder, float32 VAE)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from pipelines.tiny import _parts as _tiny_parts

    if (directory / "model_index.json").is_file():
        return directory
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        transformer = WanTransformer3DModel(num_attention_heads=12, ffn_dim=8960, num_layers=30).to(torch.bfloat16)
        vae = AutoencoderKLWan()  # the Wan 2.1 VAE's shape
        text_encoder = UMT5EncoderModel(UMT5Config(  # umt5-xxl's shape
            vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
            feed_forward_proj="gated-gelu", is_gated_act=True)).to(torch.bfloat16)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    WanPipeline(tokenizer=_tiny_parts.t5_tokenizer(), text_encoder=text_encoder, transformer=transformer, vae=vae,
                scheduler=scheduler).save_pretrained(directory, safe_serialization=True)
    (directory / tiny.MARKER).write_text("Wan 2.1 T2V 1.3B shape, random weights: output is noise.\n")
    return directory


BUILDERS = {"ltx-2b": build_ltx_2b, "wan-1.3b": build_wan_1_3b}


def transformer_tokens(pipe, height: int, width: int, frames: int) -> int:
    """Latent positions the transformer attends over: VAE compression, then its patch size."""
    spatial = getattr(pipe, "vae_spatial_compression_ratio", None) or pipe.vae_scale_factor_spatial
    temporal = getattr(pipe, "vae_temporal_compression_ratio", None) or pipe.vae_scale_factor_temporal
    patch = pipe.transformer.config.patch_size
    patch_t, patch_h, patch_w = patch if isinstance(patch, (tuple, list)) else (
        pipe.transformer.config.get("patch_size_t", 1) or 1, patch, patch)
    latent_frames = (frames - 1) // temporal + 1
    return (latent_frames // patch_t) * (height // spatial // patch_h) * (width // spatial // patch_w)


def transformer_tflop_per_step(pipe, height: int, width: int, frames: int, cfg: bool) -> float:
    """2*params*tokens (every matmul) + 4*layers*tokens^2*width (self-attention scores and
    values); cross-attention to the text tokens (at most a few hundred) is left out. Doubled by CFG."""
    config = pipe.transformer.config
    tokens = transformer_tokens(pipe, height, width, frames)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    width_ = config.num_attention_heads * config.attention_head_dim
    flop = 2 * params * tokens + 4 * config.num_layers * tokens**2 * width_
    return flop * (2 if cfg else 1) / 1e12


def time_plain(directory: Path, request: dict, device: str) -> dict:
    """What a user writes from the model card: load in bf16, move to the GPU, call, export a GIF.
    As the model cards say: Wan's VAE in float32, LTX told the frame rate."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    started = time.perf_counter()
    extra_load, extra_call = {}, {}
    if DiffusionPipeline.load_config(directory)["_class_name"] == "WanPipeline":
        from diffusers import AutoencoderKLWan

        extra_load["vae"] = AutoencoderKLWan.from_pretrained(directory, subfolder="vae", torch_dtype=torch.float32)
    else:
        extra_call["frame_rate"] = 12  # the card's fps, as the handler passes it
    pipe = DiffusionPipeline.from_pretrained(directory, torch_dtype=dtype, **extra_load).to(device)
    loaded = time.perf_counter()
    sync()
    call_started = time.perf_counter()
    video = pipe(prompt=request["prompt"], height=request["height"], width=request["width"],
                 num_frames=request["generated_frames"], num_inference_steps=request["num_inference_steps"],
                 guidance_scale=request["guidance_scale"], output_type="pil", **extra_call,
                 generator=torch.Generator("cpu").manual_seed(0)).frames[0]
    sync()
    generated = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        export_to_gif(video[: request["num_frames"]], os.path.join(workdir, "out.gif"), fps=12)
    done = time.perf_counter()
    result = {"load_s": loaded - started, "generate_s": generated - call_started, "encode_s": done - generated,
              "request_s": done - call_started,
              "frames": np.stack([np.asarray(frame) for frame in video[: request["num_frames"]]])}
    del pipe
    free()
    return result


def text_encode_s(pipe, prompt: str) -> float:
    """The prompt and the empty negative prompt through the text encoder, as the pipeline does."""
    sync()
    started = time.perf_counter()
    with torch.no_grad():
        pipe.encode_prompt(prompt=prompt, negative_prompt="", do_classifier_free_guidance=True,
                           device=pipe._execution_device)
    sync()
    return time.perf_counter() - started


def step_cache_rows(handler: EndpointHandler, request: dict, uncached: dict,
                    thresholds: list[float]) -> list[dict]:
    """First-block cache at each threshold against `uncached`, the answer to `request` (ZIP) without it."""
    from diffusers import FirstBlockCacheConfig

    transformer = handler.model.pipelines.t2v.transformer
    reference = zip_frames(uncached)
    reference_s = uncached["diagnostics"]["timing_ms"]["generate.denoise"] / 1000
    rows = [{"threshold": None, "denoise_s": reference_s, "speedup": 1.0, "psnr_db": float("inf"), "ssim": 1.0}]
    for threshold in thresholds:
        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
        # diffusers 0.39 caches the list of hooked blocks at the transformer's first call (made
        # uncached above) and would not see the cache's new hooks: drop that list
        registry = getattr(transformer, "_diffusers_hook", None)
        if registry is not None:
            registry._child_registries_cache = None
        try:
            for _ in range(2):  # the second is reported: hooks on compiled blocks may recompile once
                result = handler(request)
        finally:
            transformer.disable_cache()
        if not result["ok"]:
            rows.append({"threshold": threshold, "error": result["error"]["message"]})
            continue
        denoise_s = result["diagnostics"]["timing_ms"]["generate.denoise"] / 1000
        frames = zip_frames(result)
        rows.append({"threshold": threshold, "denoise_s": denoise_s, "speedup": reference_s / denoise_s,
                     "psnr_db": psnr(reference, frames), "ssim": ssim(reference, frames)})
    return rows


def request_inputs(size: str, steps: int) -> dict:
    """The benchmark's request at `size` ("WxHxF"): guidance 7.5, seed 0."""
    width, height, frames = (int(x) for x in size.split("x"))
    return {"prompt": "a cyberpunk street in rain, neon lights", "width": width, "height": height,
            "num_frames": frames, "num_inference_steps": steps, "guidance_scale": 7.5, "seed": 0}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser()
    on_gpu = torch.cuda.is_available()
    parser.add_argument("--model", choices=["tiny", "tiny-wan", *BUILDERS], default="ltx-2b" if on_gpu else "tiny")
    parser.add_argument("--sizes", default=None, help="WxHxF,... (default: the card's default and 768x512x121 "
                                                      "on a GPU, small sizes on CPU)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--model-dir", type=Path, help="where the full-size model is built (default: a temp dir)")
    parser.add_argument("--cache-thresholds", default="0.05,0.1",
                        help="first-block cache thresholds to measure at the first size ('' to skip)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = args.sizes or ("512x512x32,768x512x121" if device == "cuda" else "256x256x16,512x512x32")
    if args.model in BUILDERS:
        directory = BUILDERS[args.model](args.model_dir or Path(tempfile.gettempdir()) / f"video-bench-{args.model}")
    else:
        directory = tiny.ensure(model_id=args.model)
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    print(f"device: {name}; torch {torch.__version__}, diffusers {diffusers.__version__}; model {args.model}")

    started = time.perf_counter()
    first_size = sizes.split(",")[0]
    cold = subprocess.run([sys.executable, "-c", (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from handler import EndpointHandler; "
        "h = EndpointHandler(sys.argv[2]); assert h(json.loads(sys.argv[3]))['ok']"),
        str(ROOT), str(directory), json.dumps({"inputs": {**request_inputs(first_size, 2), "prompt": "cold"}})],
        capture_output=True, text=True)
    cold_s = time.perf_counter() - started
    print(f"cold start (process start to first answer, 2 steps, {first_size}): {cold_s:.1f} s"
          + ("" if cold.returncode == 0 else f" FAILED: {cold.stderr[-500:]}"))

    started = time.perf_counter()
    handler = EndpointHandler(str(directory))
    init_s = time.perf_counter() - started
    print(f"handler start-up in this process: {init_s:.1f} s (warm-up {handler.warmup_ms} ms); "
          f"speed: {handler.model.speed_applied}")
    rows = []
    zip_answers: dict[str, tuple[dict, dict]] = {}
    for size in sizes.split(","):
        inputs = request_inputs(size, args.steps)
        first = handler({"inputs": inputs})  # after start-up's warm-up: must be no slower
        result = handler({"inputs": inputs})  # the one reported
        assert first["ok"] and result["ok"], (first, result)
        zip_request = {"inputs": {**inputs, "outputs": ["zip"]}}
        zip_answers[size] = (zip_request, handler(zip_request))  # frames to compare; the step cache's reference
        handler_frames = zip_frames(zip_answers[size][1])
        d = result["diagnostics"]
        t = d["timing_ms"]
        tflop = transformer_tflop_per_step(handler.model.pipelines.t2v, inputs["height"], inputs["width"],
                                           d["generated_frames"], cfg=True)
        step_s = t["generate.denoise"] / 1000 / args.steps
        plain = time_plain(directory, {**inputs, "generated_frames": d["generated_frames"]}, device)
        row = {"size": size, "steps": args.steps, "handler_request_s": t["total"] / 1000,
               "first_request_s": first["diagnostics"]["timing_ms"]["total"] / 1000,
               "text_encode_s": text_encode_s(handler.model.pipelines.t2v, inputs["prompt"]),
               "psnr_vs_plain_db": psnr(plain["frames"], handler_frames),
               "handler_denoise_s": t["generate.denoise"] / 1000,
               "handler_vae_decode_s": t["generate.vae_decode"] / 1000,
               "handler_encode_s": t["encode"] / 1000, "handler_base64_s": t.get("base64", 0) / 1000,
               "s_per_step": step_s, "transformer_tflop_per_step": tflop,
               "mfu": (tflop / step_s / peak) if peak else None, "peak_gpu_memory_mb": d.get("peak_gpu_memory_mb"),
               "plain_request_s": plain["request_s"], "plain_generate_s": plain["generate_s"],
               "plain_encode_s": plain["encode_s"], "speedup": plain["request_s"] / (t["total"] / 1000),
               "vae_tiling": d["vae_tiling"], "vae_decode_gpu_memory_mb": d.get("vae_decode_gpu_memory_mb")}
        rows.append(row)
    print("\n| size WxHxF | plain s (generate + GIF) | handler s | speed-up | 1st request s | text enc s "
          "| denoise s | VAE s | encode s | base64 s | s/step | TFLOP/step | MFU | peak MiB | VAE MiB (tiled) "
          "| PSNR vs plain dB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mfu = f"{r['mfu']:.0%}" if r["mfu"] is not None else "n/a"
        vae_mb = r["vae_decode_gpu_memory_mb"]
        print(f"| {r['size']} | {r['plain_request_s']:.2f} ({r['plain_generate_s']:.2f} + {r['plain_encode_s']:.2f}) "
              f"| {r['handler_request_s']:.2f} | {r['speedup']:.2f}x | {r['first_request_s']:.2f} | "
              f"{r['text_encode_s']:.3f} | {r['handler_denoise_s']:.2f} | {r['handler_vae_decode_s']:.2f} | "
              f"{r['handler_encode_s']:.2f} | {r['handler_base64_s']:.3f} | {r['s_per_step']:.3f} | "
              f"{r['transformer_tflop_per_step']:.2f} | {mfu} | {r['peak_gpu_memory_mb'] or 'n/a'} | "
              f"{'n/a' if vae_mb is None else f'{vae_mb:.0f}'} ({'yes' if r['vae_tiling'] else 'no'}) | "
              f"{r['psnr_vs_plain_db']:.1f} |")

    cache_rows = []
    thresholds = [float(x) for x in args.cache_thresholds.split(",") if x.strip()]
    if thresholds:
        cache_rows = step_cache_rows(handler, *zip_answers[first_size], thresholds)
        print(f"\nfirst-block step cache at {first_size}, {args.steps} steps, against the uncached run:")
        print("| threshold | denoise s | speed-up | PSNR dB | SSIM |")
        print("|---|---|---|---|---|")
        for r in cache_rows:
            if "error" in r:
                print(f"| {r['threshold']} | failed: {r['error']} | | | |")
                continue
            print(f"| {r['threshold'] or 'off'} | {r['denoise_s']:.2f} | {r['speedup']:.2f}x | "
                  f"{r['psnr_db']:.1f} | {r['ssim']:.3f} |")
    if args.out:
        args.out.write_text(json.dumps({"device": name, "model": args.model, "cold_start_s": cold_s,
                                        "handler_init_s": init_s, "rows": rows, "step_cache": cache_rows},
                                       indent=2, default=str))


if __name__ == "__main__":
    main()
