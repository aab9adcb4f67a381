"""LoRA adapters chosen per request, from the set the operator made available.

Available: every `*.safetensors` in `<model dir>/loras/` (name = file stem) and the entries of
`VIDEO_LORAS` ("name=<Hub id or path>,..."). A client only ever names one of these.

At start-up, before compilation, each adapter is loaded with diffusers' own loader
(`load_lora_weights`: every format diffusers reads, and its check that the adapter fits the model;
a pipeline without one, Kandinsky 6, through its transformer's `load_lora_adapter`: diffusers' own
layout in a .safetensors file), its low-rank factors are read out of the peft layers, and the peft
layers are removed again: the served transformer has exactly the modules of a deployment without
adapters. Per request (under the model lock) the requested adapters are merged into the weights they target,
W = W0 + sum(scale_i * alpha_i / r_i * B_i @ A_i), computed in float32 from a copy of the original
weights W0; a request without adapters gets W0 back, bit for bit.

Why merging rather than diffusers' hot-swap with padded ranks: no per-step cost (no extra LoRA
matmuls, no slots that run at scale 0), any combination of adapters per request, and the compiled
graph is the one of a deployment without adapters (the weights change in place, which recompiles
nothing). The cost: a host copy of every weight some adapter targets, and re-merging when a request
asks for other adapters than the last one (the same adapters again cost nothing).

Wan 2.2 (a second transformer for the low-noise steps): keys under `transformer_2.` go to it, the
rest to `transformer`, as diffusers' `load_into_transformer_2` does.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

logger = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
COMPONENTS = ("transformer", "transformer_2")  # the denoisers diffusers' video LoRA loaders target
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # adapters in these formats are never loaded


class LoraLoadError(ValueError):
    """An available adapter that cannot be served: start-up stops with this message."""


def available(model_dir: str | Path | None, setting: str) -> dict[str, str]:
    """name -> source: `<model_dir>/loras/*.safetensors`, then `setting` ("name=<Hub id or path>,...")."""
    found: dict[str, str] = {}
    folder = Path(model_dir, "loras") if model_dir else None
    if folder is not None and folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):  # hidden, like `.safetensors` itself: not an adapter
                continue
            if path.suffix == ".safetensors":
                found[path.stem] = str(path)
            elif path.suffix.lower() in PICKLE_SUFFIXES:
                logger.warning("LoRA file %s is not loaded: pickled weights are never loaded; convert it to "
                               ".safetensors", path.name)
    for entry in filter(None, (part.strip() for part in setting.split(","))):
        name, sep, source = (part.strip() for part in entry.partition("="))
        if not sep or not name or not source:
            raise LoraLoadError(f"VIDEO_LORAS entry '{entry}' is not name=<Hub id or path>")
        if name in found:
            raise LoraLoadError(f"LoRA adapter '{name}' is named twice (loras/ folder and VIDEO_LORAS)")
        found[name] = source
    for name in found:
        if not NAME.fullmatch(name):
            raise LoraLoadError(f"LoRA adapter name '{name}' must be 1-64 of A-Z a-z 0-9 _ . -")
    return found


@dataclass(frozen=True)
class Factors:
    """One adapter's update of one weight: delta = scaling * up @ down."""

    down: torch.Tensor  # lora_A: rank x in_features
    up: torch.Tensor  # lora_B: out_features x rank
    scaling: float

    def delta(self) -> torch.Tensor:
        return self.scaling * (self.up.float() @ self.down.float())


@dataclass
class Adapter:
    name: str
    source: str
    factors: dict[tuple[int, str], Factors]  # (component index, module path) -> factors
    rank: int

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "rank": self.rank, "layers": len(self.factors)}


Selection = tuple[tuple[str, float], ...]  # (name, scale) in request order


@dataclass
class LoraAdapters:
    """The adapters of one loaded model, and which of them its weights hold now."""

    components: list[torch.nn.Module]
    adapters: dict[str, Adapter]
    originals: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    current: Selection | None = ()
    """the selection the weights hold; None while a merge is under way"""
    merged: set[tuple[int, str]] = field(default_factory=set)

    @property
    def names(self) -> list[str]:
        return sorted(self.adapters)

    def describe(self) -> list[dict[str, Any]]:
        return [self.adapters[name].describe() for name in self.names]

    def _weight(self, key: tuple[int, str]) -> torch.Tensor:
        weight = self.components[key[0]].get_submodule(key[1]).weight
        assert isinstance(weight, torch.Tensor)
        return weight

    @torch.no_grad()
    def apply(self, selection: Selection) -> None:
        """Make the weights W0 + the selected adapters' updates (call under the model lock). Summed
        in name order: the same adapters in another order give the same weights, bit for bit.
        All or nothing: if a merge fails part-way, every weight is W0 again before the error goes on."""
        selection = tuple(sorted(selection))
        if selection == self.current:
            return
        targets: dict[tuple[int, str], list[tuple[Factors, float]]] = {}
        for name, scale in selection:
            for key, factors in self.adapters[name].factors.items():
                targets.setdefault(key, []).append((factors, scale))
        touched = self.merged | targets.keys()
        self.current, self.merged = None, touched  # unknown until this merge is complete
        try:
            for key in touched - targets.keys():
                self._weight(key).copy_(self.originals[key])
            for key, updates in targets.items():
                weight = self._weight(key)
                merged = self.originals[key].to(weight.device, torch.float32, copy=True)  # W0 stays as it is
                for factors, scale in updates:
                    merged += scale * factors.delta()
                weight.copy_(merged)  # rounded once, to the weight's dtype
                del merged
        except BaseException:
            self.restore()
            raise
        self.current, self.merged = selection, set(targets)

    @torch.no_grad()
    def restore(self) -> None:
        """Every weight an adapter touched back to W0 (a plain copy: needs no new memory)."""
        for key in self.merged:
            self._weight(key).copy_(self.originals[key])
        self.current, self.merged = (), set()


def load(pipe: Any, sources: dict[str, str]) -> LoraAdapters | None:
    """Load every adapter into `pipe`'s transformer(s), read out its factors, remove the peft layers
    again. Raises LoraLoadError naming the adapter that does not fit."""
    if not sources:
        return None
    if not hasattr(pipe, "load_lora_weights") and not hasattr(getattr(pipe, "transformer", None),
                                                              "load_lora_adapter"):
        raise LoraLoadError(f"{type(pipe).__name__} cannot load LoRA adapters; this server lists "
                            f"{', '.join(sorted(sources))}")
    components = [getattr(pipe, name) for name in COMPONENTS if getattr(pipe, name, None) is not None]
    adapters = {}
    for index, (name, source) in enumerate(sources.items()):
        try:  # peft's own name is a plain one: a module dict key may not hold a dot
            adapters[name] = _load_one(pipe, components, name, source, peft_name=f"adapter{index}")
        except LoraLoadError:
            raise
        except Exception as exc:
            raise LoraLoadError(f"LoRA adapter '{name}' ({source}) does not fit this model: "
                                f"{type(exc).__name__}: {str(exc)[:500]}") from exc
        finally:  # the served modules are the model's own again
            if getattr(pipe, "_lora_loadable_modules", None):
                pipe.unload_lora_weights()
            elif not hasattr(pipe, "load_lora_weights"):
                pipe.transformer.unload_lora()
        logger.info("LoRA adapter %s: rank %d, %d layers", name, adapters[name].rank, len(adapters[name].factors))
    result = LoraAdapters(components=components, adapters=adapters)
    keys = {key for adapter in adapters.values() for key in adapter.factors}
    device = next(components[0].parameters()).device
    for key in keys:  # what a request without adapters gets back, bit for bit
        original = result._weight(key).detach().to("cpu", copy=True)
        result.originals[key] = original.pin_memory() if device.type == "cuda" else original
    return result


def _state_dict(pipe: Any, name: str, source: str) -> dict[str, torch.Tensor]:
    """The adapter's tensors in diffusers' layout: a .safetensors file is read here (never a pickle);
    a Hub id or a folder goes through diffusers with `use_safetensors=True`."""
    if source.endswith(".safetensors"):
        if not Path(source).is_file():
            raise LoraLoadError(f"LoRA adapter '{name}': file {source} does not exist")
        try:
            tensors = load_file(source)
        except Exception as exc:  # empty, truncated, a pickle under this name: not a file of tensors
            raise LoraLoadError(f"LoRA adapter '{name}': {source} is not a readable safetensors file "
                                f"({type(exc).__name__}: {str(exc)[:200]})") from None
        if not tensors:
            raise LoraLoadError(f"LoRA adapter '{name}': {source} holds no tensors")
        if not hasattr(pipe, "lora_state_dict"):  # no pipeline loader to convert other layouts: diffusers' own
            return tensors
        converted = pipe.lora_state_dict(tensors)  # other trainers' layouts -> diffusers'
    elif not hasattr(pipe, "lora_state_dict"):
        raise LoraLoadError(f"LoRA adapter '{name}': {type(pipe).__name__} has no LoRA loader of its own, so only "
                            f".safetensors files in diffusers' layout are read, not {source}")
    else:
        converted = pipe.lora_state_dict(source, use_safetensors=True)  # read and converted
    return converted[0] if isinstance(converted, tuple) else converted


def _load_one(pipe: Any, components: list[torch.nn.Module], name: str, source: str, peft_name: str) -> Adapter:
    state_dict = _state_dict(pipe, name, source)
    second = {"transformer." + key.removeprefix("transformer_2."): value
              for key, value in state_dict.items() if key.startswith("transformer_2.")}
    first = {key: value for key, value in state_dict.items() if not key.startswith("transformer_2.")}
    if second and len(components) < 2:
        raise LoraLoadError(f"LoRA adapter '{name}' ({source}) has transformer_2 weights; this model has one "
                            "transformer")
    if first and not hasattr(pipe, "load_lora_weights"):  # a pipeline without a loader (Kandinsky 6): its transformer
        pipe.transformer.load_lora_adapter(first, adapter_name=peft_name, prefix="transformer")
    elif first:
        pipe.load_lora_weights(first, adapter_name=peft_name)
    if second:
        pipe.load_lora_weights(second, adapter_name=peft_name, load_into_transformer_2=True)
    factors: dict[tuple[int, str], Factors] = {}
    for index, component in enumerate(components):
        for path, module in component.named_modules():
            lora_down = getattr(module, "lora_A", None)
            if not isinstance(lora_down, torch.nn.ModuleDict) or peft_name not in lora_down:
                continue
            layer: Any = module  # a peft LoraLayer: its dicts are keyed by adapter name
            down, up = layer.lora_A[peft_name].weight, layer.lora_B[peft_name].weight
            if down.dim() != 2 or layer.lora_B[peft_name].bias is not None or layer.use_dora.get(peft_name):
                raise LoraLoadError(f"LoRA adapter '{name}' ({source}) has a convolution, bias or DoRA layer at "
                                    f"{path}: only plain LoRA on linear layers is served")
            if not (torch.isfinite(down).all() and torch.isfinite(up).all()):  # 0 x NaN is NaN: no scale helps
                raise LoraLoadError(f"LoRA adapter '{name}' ({source}) holds NaN or infinite values at {path}")
            factors[(index, path)] = Factors(down=down.detach().clone(), up=up.detach().clone(),
                                             scaling=float(layer.scaling[peft_name]))
    if not factors:
        raise LoraLoadError(f"LoRA adapter '{name}' ({source}) targets none of this model's layers")
    return Adapter(name=name, source=source, factors=factors,
                   rank=max(f.down.shape[0] for f in factors.values()))
