#!/usr/bin/env python3
"""Where quantized models drift from the floating-point one, layer by layer.

    python bench/hidden_state_drift.py --model models/SmolLM2-135M-Instruct \
        --tokens data/smollm2-pydocs/eval_64x512.i32 --seq-len 512 --rows 4 DIR...

Runs the token rows through the floating-point model and through each DIR's weights (a GPTQ
directory with gptq_v2 zero points, read as bench/proxy_loss_by_module.py reads it, or a dense
Hugging Face directory such as `qshard-export --format float` or bench/reference_gptq.py writes)
on transformers' forward, and prints per DIR the mean KL divergence of the next-token
distributions against the floating-point model's and, after every decoder layer, the relative
error ||h_q - h|| / ||h|| of the hidden state (every position but the first, whose massive
activations would dominate the norm). Separates a difference that arises at one layer from one
that accumulates (docs/QUALITY.md, "Side by side with GPTQModel"). Needs torch, transformers and
safetensors (the interop venv).
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from proxy_loss_by_module import GptqDirectory  # beside this script


def linear_weights(directory: Path, names):
    config = json.loads((directory / "config.json").read_text())
    if "quantization_config" in config:
        packed = GptqDirectory(directory)
        return {name: packed.weight(name).float() for name in names}
    tensors = {}
    for shard in sorted(directory.glob("*.safetensors")):
        tensors.update(load_file(shard))
    return {name: tensors[name + ".weight"].float() for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--tokens", required=True, type=Path)
    parser.add_argument("--seq-len", required=True, type=int)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("dirs", nargs="+", type=Path)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=torch.float32).eval()
    tokens = torch.from_numpy(
        np.fromfile(args.tokens, dtype="<i4").reshape(-1, args.seq_len)[: args.rows].astype(np.int64))
    modules = {name: module for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and ".layers." in name}
    original = {name: module.weight.detach().clone() for name, module in modules.items()}

    def forward():
        hidden = []
        hooks = [layer.register_forward_hook(
            lambda module, inputs, output: hidden.append(
                (output[0] if isinstance(output, tuple) else output).detach().clone()))
            for layer in model.model.layers]
        with torch.no_grad():
            logits = model(tokens, use_cache=False).logits
        for hook in hooks:
            hook.remove()
        return hidden, torch.log_softmax(logits.double(), dim=-1)

    reference, reference_logp = forward()
    for directory in args.dirs:
        weights = linear_weights(directory, modules)
        with torch.no_grad():
            for name, module in modules.items():
                module.weight.copy_(weights[name])
        hidden, logp = forward()
        kl = (reference_logp.exp() * (reference_logp - logp)).sum(-1).mean().item()
        errors = [((h - r)[:, 1:].norm() / r[:, 1:].norm()).item() for h, r in zip(hidden, reference)]
        print(f"{directory}: KL {kl:.4f}; after each layer: " + " ".join(f"{e:.3f}" for e in errors),
              flush=True)
        with torch.no_grad():
            for name, module in modules.items():
                module.weight.copy_(original[name])


if __name__ == "__main__":
    main()
