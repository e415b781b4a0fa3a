#!/usr/bin/env python3
"""Two GPTQ checkpoints of one model, module by module, on the floating-point model's Hessians.

    python bench/proxy_loss_by_module.py --model models/SmolLM2-135M-Instruct \
        --calib data/smollm2-pydocs/calib_128x512.i32 --seq-len 512 A_DIR B_DIR

For every linear module of the decoder layers: H = X^T X of its inputs in the floating-point model
(transformers, float32, the calibration rows), and each checkpoint's GPTQ proxy loss
tr((W - Q) H (W - Q)^T) in float64, where W is the model's weight and Q the checkpoint's
dequantized one. Prints, per layer, the ratio A / B of each module (alphabetical order) and the
layer's mean, then the geometric mean over all modules: below 1, A's modules keep the
floating-point outputs better. End-to-end scores compound errors across layers; this separates
each module's quantization from that (docs/QUALITY.md, "Side by side with GPTQModel").

A and B are GPTQ directories with gptq_v2 zero points (qshard-export --checkpoint-format gptq_v2;
bench/gptq_zeros_v1_to_v2.py for a v1 file); a module stored as floats (not packed) is read as
such. Needs torch, transformers and safetensors (the interop venv).
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from gptq_zeros_v1_to_v2 import unpack_fields  # beside this script: one reader of packed fields


class GptqDirectory:
    def __init__(self, directory: Path):
        self.tensors = {}
        for shard in sorted(directory.glob("*.safetensors")):
            self.tensors.update(load_file(shard))
        config = json.loads((directory / "config.json").read_text())["quantization_config"]
        if config.get("checkpoint_format", config.get("format")) != "gptq_v2":
            raise SystemExit(f"{directory}: not gptq_v2 (bench/gptq_zeros_v1_to_v2.py converts)")
        self.bits, self.group_size = int(config["bits"]), int(config["group_size"])

    def weight(self, name: str) -> torch.Tensor:
        """The dequantized [out, in] weight of module `name`, float64."""
        t = self.tensors
        if name + ".qweight" not in t:
            return t[name + ".weight"].double()
        scales = t[name + ".scales"].double()  # [groups, out]
        columns = t[name + ".qweight"].shape[0] * 32 // self.bits
        codes = unpack_fields(t[name + ".qweight"].T.numpy(), self.bits)[:, :columns].T  # [in, out]
        zeros = unpack_fields(t[name + ".qzeros"].numpy(), self.bits)[:, : scales.shape[1]]  # [groups, out]
        group = self.group_size if self.group_size > 0 else columns
        g_idx = t[name + ".g_idx"].long().numpy() if name + ".g_idx" in t else np.arange(columns) // group
        q = codes.astype(np.int64) - zeros[g_idx].astype(np.int64)
        return (torch.from_numpy(q).double() * scales[g_idx]).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--calib", required=True, type=Path)
    parser.add_argument("--seq-len", required=True, type=int)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=torch.float32).eval()
    hessians = {}

    def accumulate(name):
        def hook(module, inputs, output):
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).float()
            hessians[name] = hessians.get(name, 0) + x.T @ x
        return hook

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in name:
            module.register_forward_hook(accumulate(name))
    tokens = np.fromfile(args.calib, dtype="<i4").reshape(-1, args.seq_len)[: args.rows]
    with torch.no_grad():
        for start in range(0, len(tokens), 8):
            model.model(torch.from_numpy(tokens[start : start + 8].astype(np.int64)))

    a, b = GptqDirectory(args.a), GptqDirectory(args.b)
    weights = model.state_dict()
    by_layer = {}
    for name in sorted(hessians, key=lambda n: (int(n.split(".")[2]), n)):
        w, h = weights[name + ".weight"].double(), hessians[name].double()
        loss = [torch.einsum("oi,ij,oj->", e, h, e).item() for e in (w - a.weight(name), w - b.weight(name))]
        by_layer.setdefault(int(name.split(".")[2]), []).append(loss[0] / loss[1])
    ratios = []
    for layer, values in by_layer.items():
        ratios += values
        print(f"layer {layer}: " + " ".join(f"{r:.3f}" for r in values) + f"  mean {np.mean(values):.3f}")
    print(f"{len(ratios)} modules: geometric mean of A/B {np.exp(np.mean(np.log(ratios))):.4f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
