"""Tiny LoRA adapters for the tiny checkpoints, built offline with peft (random weights: what
they do to the video is noise too, but a real adapter's file layout and loading path)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import save_file


def write_tiny_lora(model_dir: Path, name: str, *, rank: int = 4, targets: tuple[str, ...] = ("to_q", "to_v"),
                    seed: int = 0, components: tuple[str, ...] = ("transformer",)) -> Path:
    """Write `<model_dir>/loras/<name>.safetensors`: a rank-`rank` adapter on the `targets` layers
    of each of `components`, keys as diffusers saves them (`transformer.<module>.lora_A.weight`)."""
    index = json.loads((Path(model_dir) / "model_index.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    torch.manual_seed(seed)
    for component in components:
        library, class_name = index[component]
        module = getattr(__import__(library), class_name).from_pretrained(model_dir, subfolder=component)
        # init_lora_weights=False: both factors random (peft's default starts B at zero: no effect)
        module.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets), init_lora_weights=False))
        for key, value in get_peft_model_state_dict(module).items():
            tensors[f"{component}.{key}"] = value.detach().contiguous()
    path = Path(model_dir) / "loras" / f"{name}.safetensors"
    path.parent.mkdir(exist_ok=True)
    save_file(tensors, str(path))
    return path

