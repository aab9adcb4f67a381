"""The plain diffusers recipe vs this handler, end to end, side by side in one run.

    .venv/bin/python benchmarks/gpu_pipeline.py                 # CPU: the tiny model, small sizes
    .venv/bin/python benchmarks/gpu_pipeline.py --model tiny-wan          # or tiny-kandinsky5
    python benchmarks/gpu_pipeline.py --model ltx-2b --build-only --text-encoder-layers 4
    python benchmarks/gpu_pipeline.py --model ltx-2b --text-encoder-layers 4 --out ltx.json
    python benchmarks/gpu_pipeline.py --model wan-1.3b --sizes 512x512x32,832x480x81
    python benchmarks/gpu_pipeline.py --model kandinsky5-lite --text-encoder-layers 4 --sizes 768x512x121

On a fresh GPU machine, `bash scripts/gpu_bench.sh` runs it with a timeout per part.

`ltx-2b` builds LTX-Video 2B with random weights from the real configs (the diffusers classes'
defaults are the 2B model: 28 blocks of width 2048; the 0.9.0 VAE; a T5-XXL-sized encoder);
`wan-1.3b` builds Wan 2.1 T2V 1.3B (30 blocks of width 1536, the Wan 2.1 VAE in float32, a
UMT5-XXL-sized encoder); `kandinsky5-lite` builds Kandinsky 5.0 T2V Lite (32 blocks of width
1792, 2.0B parameters; HunyuanVideo's VAE; a Qwen2.5-VL-7B-sized text model, whose vision tower is
built at toy size because text encoding never runs it; CLIP-L). Each is saved as a diffusers
checkpoint and loaded back through the handler's real loading path: honest timings without
downloads (random weights make noise; the work per step is the real one). `--text-encoder-layers
N` builds the text encoder with N of its layers (24 for T5-XXL and UMT5-XXL, 28 for Qwen2.5-VL-7B;
writing 9.5 GB of T5-XXL takes minutes): the transformer and VAE are unchanged, and the
text-encoding time is then reported as measured with N layers.

One handler and one plain pipeline per run, each loaded once. Cold start is measured in this
process: from the process's start to the handler's first answer (imports, load, compile,
warm-up, one request). Per request size it prints a row as soon as it is measured (and rewrites
`--out`): the plain recipe (`from_pretrained(torch_dtype=bf16).to("cuda")`, call, diffusers'
`export_to_gif`) and the handler (bf16, regional compile + warm-up on CUDA, GIF, base64) with
per-stage times, text encoding timed on its own, s/step, transformer MFU against both the vendor
sheet's dense bf16 peak and a bf16 matmul measured here, the handler's peak memory (the process's
peak less the plain pipeline's resident weights), the first request at that
size beside the second, and how close the handler's frames are to the plain recipe's (same seed).
At the first size, the first-block step cache's speed and quality cost (PSNR/SSIM against the
uncached frames, same seed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from benchmarks import request_profile  # noqa: E402
from handler import EndpointHandler  # noqa: E402
from pipelines import speed, tiny  # noqa: E402
from pipelines.base import dtype_argument  # noqa: E402
from tests.media import psnr, ssim, zip_frames  # noqa: E402
from video_endpoint import settings  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}  # dense, vendor sheets
FULL_TEXT_LAYERS = 24  # T5-XXL's and UMT5-XXL's
QWEN_7B_LAYERS = 28  # Qwen2.5-VL-7B's


def build_ltx_2b(directory: Path, text_layers: int = FULL_TEXT_LAYERS) -> Path:
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
            vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=text_layers, num_heads=64,
            feed_forward_proj="gated-gelu", is_gated_act=True)).to(torch.bfloat16)
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096)
    pipe = LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                       tokenizer=_tiny_parts.t5_tokenizer(), transformer=transformer)
    pipe.save_pretrained(directory, safe_serialization=True)
    (directory / tiny.MARKER).write_text(f"LTX-Video 2B shape ({text_layers} text-encoder layers), random weights: "
                                         "output is noise.\n")
    return directory


def build_wan_1_3b(directory: Path, text_layers: int = FULL_TEXT_LAYERS) -> Path:
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
            vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=text_layers, num_heads=64,
            feed_forward_proj="gated-gelu", is_gated_act=True)).to(torch.bfloat16)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    WanPipeline(tokenizer=_tiny_parts.t5_tokenizer(), text_encoder=text_encoder, transformer=transformer, vae=vae,
                scheduler=scheduler).save_pretrained(directory, safe_serialization=True)
    (directory / tiny.MARKER).write_text(f"Wan 2.1 T2V 1.3B shape ({text_layers} text-encoder layers), random "
                                         "weights: output is noise.\n")
    return directory


def build_kandinsky5_lite(directory: Path, text_layers: int = QWEN_7B_LAYERS) -> Path:
    """Kandinsky 5.0 T2V Lite with random weights (bf16), its tokenizer stored as the tiny one's."""
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        Kandinsky5T2VPipeline,
        Kandinsky5Transformer3DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from pipelines.tiny import kandinsky5 as tiny_kandinsky5

    if (directory / "model_index.json").is_file():
        return directory
    text = tiny_kandinsky5.text_components(tiny_kandinsky5._prompt_template(Kandinsky5T2VPipeline))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        transformer = Kandinsky5Transformer3DModel(  # the released T2V Lite configuration
            in_visual_dim=16, out_visual_dim=16, time_dim=512, patch_size=(1, 2, 2), model_dim=1792, ff_dim=7168,
            num_text_blocks=2, num_visual_blocks=32, axes_dims=(16, 24, 24), visual_cond=True, in_text_dim=3584,
            in_text_dim2=768).to(torch.bfloat16)
        vae = AutoencoderKLHunyuanVideo().to(torch.bfloat16)  # HunyuanVideo's VAE
        text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
            text_config=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                             num_hidden_layers=text_layers, num_attention_heads=28, num_key_value_heads=4,
                             rope_theta=1000000.0, max_position_embeddings=128000,
                             rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"}),
            vision_config=dict(depth=1, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=3584,
                               fullatt_block_indexes=[0]))).to(torch.bfloat16)
        clip = CLIPTextModel(CLIPTextConfig(  # clip-vit-large-patch14's text model
            vocab_size=len(text["tokenizer_2"]), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=77, projection_dim=768)).to(torch.bfloat16)
    pipe = Kandinsky5T2VPipeline(transformer=transformer, vae=vae, text_encoder=text_encoder,
                                 tokenizer=text["tokenizer"], text_encoder_2=clip, tokenizer_2=text["tokenizer_2"],
                                 scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0))
    tiny_kandinsky5.save_with_processor(pipe, directory)
    (directory / tiny.MARKER).write_text(f"Kandinsky 5.0 T2V Lite shape ({text_layers} text-encoder layers), random "
                                         "weights: output is noise.\n")
    return directory


BUILDERS = {"ltx-2b": build_ltx_2b, "wan-1.3b": build_wan_1_3b, "kandinsky5-lite": build_kandinsky5_lite}
FULL_LAYERS = {"ltx-2b": FULL_TEXT_LAYERS, "wan-1.3b": FULL_TEXT_LAYERS, "kandinsky5-lite": QWEN_7B_LAYERS}
# parameters that run over the text tokens, not the video's: cross-attention keys and values, text blocks
TEXT_SIDE = (".attn2.to_k.", ".attn2.to_v.", ".cross_attention.to_key.", ".cross_attention.to_value.",
             "text_transformer_blocks.")


def transformer_tokens(pipe, height: int, width: int, frames: int) -> int:
    """Latent positions the transformer attends over: VAE compression, then its patch size."""
    spatial = getattr(pipe, "vae_spatial_compression_ratio", None) or pipe.vae_scale_factor_spatial
    temporal = getattr(pipe, "vae_temporal_compression_ratio", None) or pipe.vae_scale_factor_temporal
    patch = pipe.transformer.config.patch_size
    patch_t, patch_h, patch_w = patch if isinstance(patch, (tuple, list)) else (
        pipe.transformer.config.get("patch_size_t", 1) or 1, patch, patch)
    latent_frames = (frames - 1) // temporal + 1
    return (latent_frames // patch_t) * (height // spatial // patch_h) * (width // spatial // patch_w)


def transformer_tflop_per_step(pipe, height: int, width: int, frames: int, text_tokens: int, cfg: bool) -> float:
    """Matmuls: 2 x params x tokens, except the parameters that run over the text tokens (`TEXT_SIDE`:
    cross-attention keys and values, text blocks); attention: 4 x layers x width x tokens x (tokens +
    text tokens) for the self- and cross-attention scores and values. Doubled by CFG."""
    config = pipe.transformer.config
    tokens = transformer_tokens(pipe, height, width, frames)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    text_side = sum(p.numel() for name, p in pipe.transformer.named_parameters()
                    if any(part in name for part in TEXT_SIDE))
    if "model_dim" in config:  # Kandinsky: width and its video blocks
        width_, layers = config.model_dim, config.num_visual_blocks
    else:
        width_, layers = config.num_attention_heads * config.attention_head_dim, config.num_layers
    flop = (2 * (params - text_side) * tokens + 2 * text_side * text_tokens
            + 4 * layers * width_ * tokens * (tokens + text_tokens))
    return flop * (2 if cfg else 1) / 1e12


def measured_matmul_tflops() -> float | None:
    """Dense bf16 matmul throughput here (8192^3, mean of 10 after 3 warm-ups): the MFU a model
    could reach is bounded by it, not by the vendor sheet."""
    if not torch.cuda.is_available():
        return None
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    sync()
    started = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    return 2 * 8192**3 * 10 / (time.perf_counter() - started) / 1e12


def load_plain(directory: Path, device: str):
    """What a user writes from the model card: load in bf16 and move to the GPU (Wan's VAE in
    float32, as its card says). Loaded once per run."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    extra_load = {}
    class_name = DiffusionPipeline.load_config(directory)["_class_name"]
    kandinsky = class_name.startswith("Kandinsky5")
    if kandinsky:  # its Qwen processor's text half, given after loading as the handler does
        extra_load["tokenizer"] = None
    if class_name == "WanPipeline":
        from diffusers import AutoencoderKLWan

        extra_load["vae"] = AutoencoderKLWan.from_pretrained(directory, subfolder="vae",
                                                             **dtype_argument(torch.float32))
    pipe = DiffusionPipeline.from_pretrained(directory, **dtype_argument(dtype), **extra_load).to(device)
    if kandinsky:
        from pipelines.base import TextTokenizer

        pipe.register_modules(tokenizer=TextTokenizer.load(str(directory), "tokenizer"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def time_plain(pipe, request: dict) -> dict:
    """The card's recipe for one request: call, export a GIF (LTX told the frame rate)."""
    extra_call = {"frame_rate": 12} if type(pipe).__name__.startswith("LTX") else {}  # the card's fps
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
    return {"generate_s": generated - call_started, "encode_s": done - generated, "request_s": done - call_started,
            "frames": np.stack([np.asarray(frame) for frame in video[: request["num_frames"]]])}


def text_encode(pipe, prompt: str) -> tuple[float, int]:
    """Seconds for the prompt and the negative prompt through the text encoder(s), as the pipeline
    does it, and the text tokens the transformer attends to."""
    sync()
    started = time.perf_counter()
    with torch.no_grad():
        if type(pipe).__name__.startswith("Kandinsky5"):  # one prompt per call: its own negative one too
            embeds = pipe.encode_prompt(prompt=prompt, device=pipe._execution_device)
            pipe.encode_prompt(prompt="Static, 2D cartoon", device=pipe._execution_device)
        else:
            embeds = pipe.encode_prompt(prompt=prompt, negative_prompt="", do_classifier_free_guidance=True,
                                        device=pipe._execution_device)
    sync()
    return time.perf_counter() - started, int(embeds[0].shape[1])


def step_cache_rows(handler: EndpointHandler, request: dict, uncached: dict, reference_s: float,
                    thresholds: list[float]) -> list[dict]:
    """First-block cache at each threshold against `uncached`, the answer to `request` (ZIP) without
    it, and `reference_s`, the denoising time of a warm uncached request of that size.
    A compiled transformer is compiled again without fullgraph, as the handler does with
    VIDEO_STEP_CACHE (the cache decides per step outside the graph)."""
    from diffusers import FirstBlockCacheConfig

    transformer = handler.model.pipelines.t2v.transformer
    reference = zip_frames(uncached)
    rows = [{"threshold": None, "denoise_s": reference_s, "speedup": 1.0, "psnr_db": float("inf"), "ssim": 1.0}]
    compiled = handler.model.speed.compile
    unsupported = speed.step_cache_unsupported(transformer)
    for threshold in thresholds:
        if unsupported:
            rows.append({"threshold": threshold, "error": unsupported})
            continue
        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
        # diffusers 0.39 caches the list of hooked blocks at the transformer's first call (made
        # uncached above) and would not see the cache's new hooks: drop that list
        registry = getattr(transformer, "_diffusers_hook", None)
        if registry is not None:
            registry._child_registries_cache = None
        if compiled:
            transformer.compile_repeated_blocks(fullgraph=False)
        try:
            for _ in range(2):  # the second is reported: the first compiles the cached blocks
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


def seconds_since_process_start() -> float:
    import psutil  # accelerate's and peft's dependency: there wherever diffusers runs here

    return time.time() - psutil.Process().create_time()


TABLE_HEADER = (
    "| size WxHxF | plain s (generate + GIF) | handler s | speed-up | 1st request s (generate) | text enc s "
    "| denoise s | VAE s | encode s | base64 s | s/step | TFLOP/step | MFU sheet / measured | handler peak MiB "
    "| VAE MiB (tiled) | PSNR vs plain dB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def table_row(r: dict) -> str:
    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    vae_mb, peak_mb = r["vae_decode_gpu_memory_mb"], r["peak_gpu_memory_mb"]
    return (f"| {r['size']} | {r['plain_request_s']:.2f} ({r['plain_generate_s']:.2f} + {r['plain_encode_s']:.2f}) "
            f"| {r['handler_request_s']:.2f} | {r['speedup']:.2f}x | {r['first_generate_s']:.2f} vs "
            f"{r['handler_generate_s']:.2f} | {r['text_encode_s']:.3f} | {r['handler_denoise_s']:.2f} | "
            f"{r['handler_vae_decode_s']:.2f} | {r['handler_encode_s']:.2f} | {r['handler_base64_s']:.3f} | "
            f"{r['s_per_step']:.3f} | {r['transformer_tflop_per_step']:.2f} | {share(r['mfu'])} / "
            f"{share(r['mfu_measured'])} | {'n/a' if peak_mb is None else f'{peak_mb:.0f}'} | "
            f"{'n/a' if vae_mb is None else f'{vae_mb:.0f}'} ({'yes' if r['vae_tiling'] else 'no'}) | "
            f"{r['psnr_vs_plain_db']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    on_gpu = torch.cuda.is_available()
    parser.add_argument("--model", choices=["tiny", "tiny-wan", "tiny-kandinsky5", *BUILDERS],
                        default="ltx-2b" if on_gpu else "tiny")
    parser.add_argument("--sizes", default=None, help="WxHxF,... (default: the card's default and 768x512x121 "
                                                      "on a GPU, small sizes on CPU)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--model-dir", type=Path, help="where the full-size model is built (default: a temp dir)")
    parser.add_argument("--text-encoder-layers", type=int,
                        help="layers of the full-size models' text encoder (default: all; fewer: faster to build; "
                             "reported)")
    parser.add_argument("--build-only", action="store_true", help="build the full-size model and stop")
    parser.add_argument("--cache-thresholds", default="0.05,0.1",
                        help="first-block cache thresholds to measure at the first size ('' to skip)")
    parser.add_argument("--profile", action="store_true",
                        help="at the last size: repeated requests, each output's VAE + encode share, and a "
                             "torch profiler trace of a two-step request (written beside --out)")
    parser.add_argument("--trace-first", action="store_true",
                        help="after the cold start, trace the first and the second request at the last size "
                             "(not in the warm-up) and stop")
    parser.add_argument("--out", type=Path, help="JSON report, rewritten after every size")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = (args.sizes or ("512x512x32,768x512x121" if device == "cuda" else "256x256x16,512x512x32")).split(",")
    started = time.perf_counter()
    if args.model in BUILDERS and args.text_encoder_layers is None:
        args.text_encoder_layers = FULL_LAYERS[args.model]
    if args.model in BUILDERS:
        default_dir = Path(tempfile.gettempdir()) / f"video-bench-{args.model}-text{args.text_encoder_layers}"
        directory = BUILDERS[args.model](args.model_dir or default_dir, args.text_encoder_layers)
    else:
        directory = tiny.ensure(settings.tiny_model_dir(args.model), args.model)
    print(f"model {args.model} at {directory}: ready in {time.perf_counter() - started:.1f} s", flush=True)
    if args.build_only:
        return
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    text_layers = args.text_encoder_layers if args.model in BUILDERS else None
    print(f"device: {name}; torch {torch.__version__}, diffusers {diffusers.__version__}; model {args.model}"
          + (f" with {text_layers} of {FULL_LAYERS[args.model]} text-encoder layers" if text_layers else ""),
          flush=True)
    report: dict = {"device": name, "model": args.model, "text_encoder_layers": text_layers,
                    "torch": torch.__version__, "diffusers": diffusers.__version__, "peak_bf16_tflops_sheet": peak,
                    "rows": [], "step_cache": []}

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps(report, indent=2, default=str))

    started = time.perf_counter()
    handler = EndpointHandler(str(directory))
    report["handler_init_s"] = time.perf_counter() - started
    zip_requests = {size: {"inputs": {**request_inputs(size, args.steps), "outputs": ["zip"]}} for size in sizes}
    first_answers = {sizes[0]: handler(zip_requests[sizes[0]])}  # the first user request: ends the cold start
    report["cold_start_s"] = seconds_since_process_start()
    print(f"handler start-up {report['handler_init_s']:.1f} s (warm-up {handler.warmup_ms} ms; speed: "
          f"{handler.model.speed_applied}); cold start, process start to first answer ({sizes[0]}, "
          f"{args.steps} steps): {report['cold_start_s']:.1f} s", flush=True)
    if args.trace_first:
        folder = args.out.parent if args.out else Path(tempfile.gettempdir())
        report["first_and_second"] = request_profile.trace_first_and_second(
            handler, request_inputs(sizes[-1], args.steps), folder, f"{args.model}-{sizes[-1]}")
        save()
        return
    report["measured_bf16_tflops"] = measured_matmul_tflops()
    started = time.perf_counter()
    resident = torch.cuda.memory_allocated() if device == "cuda" else 0
    plain_pipe = load_plain(directory, device)
    report["plain_load_s"] = time.perf_counter() - started
    # the diagnostics' peak is the process's: from here on it counts the plain pipeline's weights too
    plain_mb = (torch.cuda.memory_allocated() - resident) / 2**20 if device == "cuda" else 0.0
    report["plain_pipeline_gpu_memory_mb"] = plain_mb
    print(f"plain pipeline loaded in {report['plain_load_s']:.1f} s; bf16 matmul measured here: "
          f"{report['measured_bf16_tflops'] or 'n/a'} TFLOP/s (sheet: {peak or 'n/a'})\n\n{TABLE_HEADER}", flush=True)
    save()
    for size in sizes:
        inputs = request_inputs(size, args.steps)
        first = first_answers.get(size) or handler(zip_requests[size])  # frames, and the first request
        first_answers[size] = first
        result = handler({"inputs": inputs})  # the one reported: the card's GIF
        assert first["ok"] and result["ok"], (first, result)
        handler_frames = zip_frames(first)
        d, t = result["diagnostics"], result["diagnostics"]["timing_ms"]
        text_s, text_tokens = text_encode(handler.model.pipelines.t2v, inputs["prompt"])
        tflop = transformer_tflop_per_step(handler.model.pipelines.t2v, inputs["height"], inputs["width"],
                                           d["generated_frames"], text_tokens, cfg=True)
        step_s = t["generate.denoise"] / 1000 / args.steps
        plain = time_plain(plain_pipe, {**inputs, "generated_frames": d["generated_frames"]})
        measured = report["measured_bf16_tflops"]
        row = {"size": size, "steps": args.steps, "handler_request_s": t["total"] / 1000,
               "handler_generate_s": t["generate"] / 1000,
               "first_generate_s": first["diagnostics"]["timing_ms"]["generate"] / 1000,
               "text_encode_s": text_s, "text_tokens": text_tokens,
               "psnr_vs_plain_db": psnr(plain["frames"], handler_frames),
               "handler_denoise_s": t["generate.denoise"] / 1000,
               "handler_vae_decode_s": t["generate.vae_decode"] / 1000,
               "handler_encode_s": t["encode"] / 1000, "handler_base64_s": t.get("base64", 0) / 1000,
               "s_per_step": step_s, "transformer_tflop_per_step": tflop,
               "mfu": (tflop / step_s / peak) if peak else None,
               "mfu_measured": (tflop / step_s / measured) if measured else None,
               "process_peak_gpu_memory_mb": d.get("peak_gpu_memory_mb"),
               "peak_gpu_memory_mb": d["peak_gpu_memory_mb"] - plain_mb if d.get("peak_gpu_memory_mb") else None,
               "plain_request_s": plain["request_s"], "plain_generate_s": plain["generate_s"],
               "plain_encode_s": plain["encode_s"], "speedup": plain["request_s"] / (t["total"] / 1000),
               "vae_tiling": d["vae_tiling"], "vae_decode_gpu_memory_mb": d.get("vae_decode_gpu_memory_mb")}
        report["rows"].append(row)
        print(table_row(row), flush=True)
        save()
    del plain_pipe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    if args.profile:
        inputs = request_inputs(sizes[-1], args.steps)
        spread = request_profile.generate_spread(handler, inputs, repeats=3)
        shares = request_profile.output_shares(handler, inputs, ["gif", "mp4", "webm", "zip"])
        folder = args.out.parent if args.out else Path(tempfile.gettempdir())
        trace = folder / f"trace-{args.model}-{sizes[-1]}.json.gz"
        profile = request_profile.profile_one_step(handler, inputs, trace)
        report["profile"] = {"generate_s_repeated": spread, "output_shares": shares, "one_step": profile}
        request_profile.print_report(spread, report["rows"][-1]["first_generate_s"], shares, profile)
        save()

    thresholds = [float(x) for x in args.cache_thresholds.split(",") if x.strip()]
    if thresholds:
        report["step_cache"] = step_cache_rows(handler, zip_requests[sizes[0]], first_answers[sizes[0]],
                                               report["rows"][0]["handler_denoise_s"], thresholds)
        print(f"\nfirst-block step cache at {sizes[0]}, {args.steps} steps, against the uncached run:")
        print("| threshold | denoise s | speed-up | PSNR dB | SSIM |")
        print("|---|---|---|---|---|")
        for r in report["step_cache"]:
            if "error" in r:
                print(f"| {r['threshold']} | failed: {r['error']} | | | |")
                continue
            print(f"| {r['threshold'] or 'off'} | {r['denoise_s']:.2f} | {r['speedup']:.2f}x | "
                  f"{r['psnr_db']:.1f} | {r['ssim']:.3f} |")
        save()


if __name__ == "__main__":
    main()
