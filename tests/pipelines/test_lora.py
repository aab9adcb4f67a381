"""LoRA adapters per request, on tiny random-weight adapters built offline with peft for the tiny
LTX-Video and Wan checkpoints: what the frames do with and without them, what a bad choice answers,
what start-up refuses, and that switching recompiles and grows nothing."""

from __future__ import annotations

import os
import shutil

import numpy as np
import psutil
import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors.torch import load_file, save_file

from handler import EndpointHandler
from pipelines import lora
from pipelines.tiny import wan as tiny_wan
from pipelines.tiny.loras import write_tiny_lora
from tests.media import zip_frames
from video_endpoint.errors import ModelLoadError

SMALL = {"prompt": "a red balloon", "height": 64, "width": 96, "num_frames": 9, "num_inference_steps": 2,
         "seed": 4, "outputs": ["zip"]}
MODELS = ["tiny", "tiny-wan", "tiny-cogvideox", "tiny-hunyuan"]


def with_adapters(source, target):
    """A copy of the tiny checkpoint `source` with two adapters: `style` (rank 4 on to_q/to_v) and
    `detail` (rank 8 on every attention projection)."""
    shutil.copytree(source, target)
    write_tiny_lora(target, "style", rank=4, seed=1)
    write_tiny_lora(target, "detail", rank=8, targets=("to_q", "to_k", "to_v", "to_out.0"), seed=2)
    return target


@pytest.fixture(scope="module")
def adapted(tmp_path_factory, tiny_model_dir, tiny_models):
    """model id -> (handler with the adapters, handler on the same checkpoint without them)."""
    made = {}

    def get(model_id):
        if model_id not in made:
            source = tiny_model_dir if model_id == "tiny" else tiny_models(model_id)
            directory = with_adapters(source, tmp_path_factory.mktemp("adapted") / model_id)
            made[model_id] = EndpointHandler(str(directory)), EndpointHandler(str(source))
        return made[model_id]

    return get


def frames(handler, **change):
    return zip_frames(handler({"inputs": {**SMALL, **change}}))


@pytest.mark.parametrize("model_id", MODELS)
def test_adapters_change_the_frames_and_nothing_leaks(adapted, model_id):
    handler, plain = adapted(model_id)
    assert [a["name"] for a in handler.model.describe()["loras"]] == ["detail", "style"]  # /health lists them
    detail, style = handler.model.describe()["loras"]
    assert (detail["rank"], style["rank"]) == (8, 4) and detail["layers"] > style["layers"] > 0
    baseline = frames(plain)  # a deployment that never loaded an adapter
    np.testing.assert_array_equal(frames(handler), baseline)
    styled = frames(handler, loras=[{"name": "style"}])
    assert not np.array_equal(styled, baseline)
    half = frames(handler, loras=[{"name": "style", "scale": 0.5}])
    both = frames(handler, loras=[{"name": "style"}, {"name": "detail", "scale": 0.7}])
    assert not np.array_equal(half, styled) and not np.array_equal(both, styled)
    np.testing.assert_array_equal(frames(handler), baseline)  # nothing left of the last request
    np.testing.assert_array_equal(frames(handler, loras=[{"name": "detail", "scale": 0.0}]), baseline)
    np.testing.assert_array_equal(frames(handler, loras=[{"name": "style"}]), styled)  # same seed + loras
    np.testing.assert_array_equal(frames(handler, loras=[{"name": "detail", "scale": 0.7}, {"name": "style"}]),
                                  both)  # order does not matter
    result = handler({"inputs": {**SMALL, "loras": [{"name": "style", "scale": 0.5}]}})
    assert result["diagnostics"]["loras"] == [{"name": "style", "scale": 0.5}]
    assert handler({"inputs": SMALL})["diagnostics"]["loras"] == []


def test_the_merge_is_what_peft_computes(adapted, tiny_model_dir):
    """The merged weights give the transformer the output diffusers' own runtime LoRA gives."""
    handler, _ = adapted("tiny")
    directory = handler.model.source
    reference = DiffusionPipeline.from_pretrained(directory)
    reference.load_lora_weights(os.path.join(directory, "loras", "detail.safetensors"), adapter_name="detail")
    reference.set_adapters(["detail"], adapter_weights=[0.7])
    inputs = {"hidden_states": torch.randn(1, 12, 16, generator=torch.Generator().manual_seed(0)),
              "encoder_hidden_states": torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1)),
              "timestep": torch.tensor([500]), "encoder_attention_mask": torch.ones(1, 5),
              "num_frames": 3, "height": 2, "width": 2}
    transformer = handler.model.pipelines.t2v.transformer
    with torch.no_grad():
        expected = reference.transformer(**inputs).sample
        handler.model.loras.apply((("detail", 0.7),))
        merged = transformer(**inputs).sample
        handler.model.loras.apply(())
        unchanged = transformer(**inputs).sample
    torch.testing.assert_close(merged, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unchanged, expected, rtol=1e-3, atol=1e-4)


def test_bad_choices_answer_with_the_field(adapted, handler):
    with_loras, _ = adapted("tiny")
    cases = [
        ([{"name": "../../etc/passwd"}], "loras.0.name", "this server has: detail, style"),
        ([{"name": "https://example.com/x.safetensors"}], "loras.0.name", "unknown LoRA adapter"),
        ([{"name": "style"}, {"name": "style"}], "loras.1.name", "listed twice"),
        ([{"name": "style", "scale": 2.5}], "loras.0.scale", "less than or equal to 2"),
        ([{"name": "style", "scale": "1"}], "loras.0.scale", "valid number"),
        ([{"name": "style", "weight": 1}], "loras.0.weight", "unknown field"),
        ([{"name": "style"}] * 5, "loras", "at most 4"),
        ({"name": "style"}, "loras", "valid list"),
    ]
    for loras, field, message in cases:
        result = with_loras({"inputs": {**SMALL, "loras": loras}})
        assert result["ok"] is False and result["error"]["type"] == "invalid_request", (loras, result)
        assert result["error"]["field"] == field and message in result["error"]["message"], (loras, result)
    none = handler({"inputs": {**SMALL, "loras": [{"name": "style"}]}})  # a server without adapters
    assert none["error"]["field"] == "loras.0.name" and "this server has none" in none["error"]["message"]
    assert with_loras({"inputs": SMALL})["ok"] is True  # and the next request is served


def test_an_adapter_that_does_not_fit_stops_start_up(tmp_path, tiny_model_dir, tiny_models, monkeypatch):
    ltx = tmp_path / "ltx"
    shutil.copytree(tiny_model_dir, ltx)
    wan_lora = write_tiny_lora(with_adapters(tiny_models("tiny-wan"), tmp_path / "wan"), "for-wan", rank=2)
    (ltx / "loras").mkdir()
    shutil.copy(wan_lora, ltx / "loras" / "for-wan.safetensors")  # Wan's layer names, not LTX's
    with pytest.raises(ModelLoadError, match="LoRA adapter 'for-wan'"):
        EndpointHandler(str(ltx))
    os.remove(ltx / "loras" / "for-wan.safetensors")
    monkeypatch.setenv("VIDEO_LORAS", f"extra={wan_lora}")  # a path the operator gives works the same way
    with pytest.raises(ModelLoadError, match="LoRA adapter 'extra'"):
        EndpointHandler(str(ltx))
    (ltx / "loras" / "pickled.bin").write_bytes(b"not loaded: only *.safetensors are adapters")
    monkeypatch.setenv("VIDEO_LORAS", f"style2={write_tiny_lora(ltx, 'style')}")
    assert sorted(EndpointHandler(str(ltx)).model.loras.names) == ["style", "style2"]
    for bad, why in (("nameonly", "is not name="), ("a=", "is not name="), ("bad name=x.safetensors", "1-64 of"),
                     ("style=x.safetensors", "named twice"), (f"gone={tmp_path}/gone.safetensors", "does not exist")):
        monkeypatch.setenv("VIDEO_LORAS", bad)
        with pytest.raises(ModelLoadError, match=why):
            EndpointHandler(str(ltx))


def test_wan_2_2_gives_each_transformer_its_own_weights(tmp_path):
    """Wan 2.2 A14B's second transformer (the low-noise steps) takes the adapter's `transformer_2.` keys."""
    from diffusers import WanPipeline

    directory = tmp_path / "wan-a14b"
    WanPipeline(vae=tiny_wan._wan21_vae(), scheduler=tiny_wan._scheduler(), boundary_ratio=0.9,
                transformer=tiny_wan._tiny_transformer(16, 16), transformer_2=tiny_wan._tiny_transformer(16, 16),
                **tiny_wan._tiny_text()).save_pretrained(directory, safe_serialization=True)
    write_tiny_lora(directory, "both", components=("transformer", "transformer_2"), seed=3)
    write_tiny_lora(directory, "low-noise-only", components=("transformer_2",), seed=4)
    handler = EndpointHandler(str(directory))
    adapters = handler.model.loras.adapters
    assert {index for index, _ in adapters["both"].factors} == {0, 1}
    assert {index for index, _ in adapters["low-noise-only"].factors} == {1}
    baseline = frames(handler)
    assert not np.array_equal(frames(handler, loras=[{"name": "low-noise-only"}]), baseline)
    np.testing.assert_array_equal(frames(handler), baseline)
    single = tmp_path / "wan21"
    shutil.copytree(directory, single, ignore=shutil.ignore_patterns("transformer_2"))
    index = (single / "model_index.json").read_text().replace('"transformer_2": [\n    "diffusers",\n    '
                                                              '"WanTransformer3DModel"\n  ]', '"transformer_2": '
                                                              '[null, null]')
    (single / "model_index.json").write_text(index)
    with pytest.raises(ModelLoadError, match="transformer_2 weights; this model has one transformer"):
        EndpointHandler(str(single))


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_switching_adapters_after_warm_up_recompiles_nothing(adapted, monkeypatch):
    """The weights change in place: the compiled blocks read them as inputs, so no adapter, another
    adapter, two, or another scale recompile nothing (a recompilation raises: ok false)."""
    handler, _ = adapted("tiny")
    monkeypatch.setenv("VIDEO_COMPILE", "1")
    torch._dynamo.reset()
    compiled = EndpointHandler(handler.model.source)
    try:
        assert any("regional compilation" in item for item in compiled.model.describe()["speed"])
        with torch._dynamo.config.patch(error_on_recompile=True):
            for loras in ([], [{"name": "style"}], [{"name": "detail", "scale": -0.5}],
                          [{"name": "style"}, {"name": "detail"}], [{"name": "style", "scale": 0.3}], []):
                result = compiled({"inputs": {**SMALL, "num_inference_steps": 3, "loras": loras}})
                assert result["ok"] is True, (loras, result)
    finally:
        torch._dynamo.reset()


def test_fifty_switches_grow_no_memory(adapted):
    handler, _ = adapted("tiny")
    choices = [[{"name": "style"}], [{"name": "detail", "scale": 0.5}], [], [{"name": "style"}, {"name": "detail"}]]

    def switch(times):
        for i in range(times):
            assert handler({"inputs": {**SMALL, "num_frames": 1, "loras": choices[i % len(choices)]}})["ok"]

    switch(8)  # allocator pools and caches filled
    before = psutil.Process().memory_info().rss
    switch(50)
    grown = psutil.Process().memory_info().rss - before
    assert grown < 8 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over 50 switches"


def test_available_reads_the_folder_then_the_setting(tmp_path):
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "b.safetensors").write_bytes(b"")
    (tmp_path / "loras" / "notes.txt").write_text("not an adapter")
    assert lora.available(tmp_path, " a = org/repo , c=/srv/c.safetensors") == {
        "b": str(tmp_path / "loras" / "b.safetensors"), "a": "org/repo", "c": "/srv/c.safetensors"}
    assert lora.available(None, "") == {}


@pytest.mark.parametrize("fault", [torch.cuda.OutOfMemoryError("CUDA out of memory (injected)"),
                                   RuntimeError("injected")], ids=["out_of_memory", "other"])
def test_a_merge_that_fails_part_way_leaves_the_model_s_own_weights(adapted, monkeypatch, fault):
    """A fault in the third weight's merge used to leave the weights half-merged: the next request
    without adapters answered ok, `loras: []`, with other frames than the model's own."""
    handler, plain = adapted("tiny")
    baseline = frames(plain)
    styled = frames(handler, loras=[{"name": "style"}])
    real_delta, calls = lora.Factors.delta, []

    def failing_delta(self):
        calls.append(self)
        if len(calls) == 3:
            raise fault
        return real_delta(self)

    monkeypatch.setattr(lora.Factors, "delta", failing_delta)
    failed = handler({"inputs": {**SMALL, "loras": [{"name": "detail"}]}})
    monkeypatch.undo()
    assert len(calls) == 3 and failed["ok"] is False
    assert failed["error"]["type"] == ("out_of_memory" if isinstance(fault, torch.cuda.OutOfMemoryError)
                                       else "internal")
    adapters = handler.model.loras
    for key, original in adapters.originals.items():
        assert torch.equal(adapters._weight(key).cpu(), original), key  # W0, bit for bit
    np.testing.assert_array_equal(frames(handler), baseline)
    np.testing.assert_array_equal(frames(handler, loras=[{"name": "style"}]), styled)


def test_adapter_files_are_checked_and_named_at_start_up(tmp_path, tiny_model_dir, caplog):
    """Corrupt, empty and pickled `.safetensors` files used to be reported as "does not fit this
    model"; a file named `.safetensors` failed inside peft (so did any name with a dot); an adapter
    of NaNs was accepted (even at scale 0 it made every weight NaN); `*.bin` went unmentioned."""
    ltx = tmp_path / "ltx"
    shutil.copytree(tiny_model_dir, ltx)
    good = write_tiny_lora(ltx, "style.v2")
    shutil.copy(good, ltx / "loras" / ".safetensors")  # hidden: skipped
    (ltx / "loras" / "old.bin").write_bytes(b"never unpickled")
    with caplog.at_level("WARNING", logger="pipelines.lora"):
        handler = EndpointHandler(str(ltx))
    assert handler.model.loras.names == ["style.v2"]
    assert "old.bin is not loaded: pickled weights are never loaded" in caplog.text
    assert handler({"inputs": {**SMALL, "loras": [{"name": "style.v2"}]}})["ok"] is True
    tensors = load_file(good)
    torch.save(tensors, ltx / "pickle.pt")
    nan = {key: value.clone() for key, value in tensors.items()}
    next(iter(nan.values()))[0, 0] = float("nan")
    bad_files = {"empty": (b"", "is not a readable safetensors file"),
                 "truncated": (good.read_bytes()[:200], "is not a readable safetensors file"),
                 "pickled": ((ltx / "pickle.pt").read_bytes(), "is not a readable safetensors file"),
                 "no-tensors": (None, "holds no tensors"), "nan": (nan, "holds NaN or infinite values")}
    for name, (content, why) in bad_files.items():
        path = ltx / "loras" / f"{name}.safetensors"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            save_file(content or {}, str(path))
        with pytest.raises(ModelLoadError, match=f"LoRA adapter '{name}'.*{why}"):
            EndpointHandler(str(ltx))
        path.unlink()
