#!/usr/bin/env python3
"""A third opinion: the published GPTQ algorithm in plain PyTorch on a Llama-family model.

    python bench/reference_gptq.py --model models/SmolLM2-135M-Instruct \
        --calib data/smollm2-pydocs/calib_128x512.i32 --seq-len 512 \
        --bits 3 --group-size 128 [--act-order] [--dtype float64] --out DIR

Independent of qshard and of GPTQModel: the paper's column-by-column solver
(bench/gptq_torch_baseline.py's: damping 0.01 of the mean diagonal, the upper Cholesky factor of H^-1, lazy batches of 128 columns, a group's
asymmetric min/max range, including 0, taken at its first column from the weights as they stand,
act_order by descending diag(H)) and the reference driver (layer by layer through transformers'
decoder layers, true-sequential (q,k,v) -> o -> (gate,up) -> down, each stage's Hessian from
inputs through the already quantized modules, the next layer's inputs through the quantized
layer). H accumulates in float64; the solve runs in --dtype (float32 as the reference code).
Writes DIR as a Hugging Face model whose linear weights are the dequantized values (float32), for
`qshard-eval --model DIR --reference MODEL` (docs/QUALITY.md, "Side by side with GPTQModel").
Needs torch and transformers (the interop venv).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from gptq_torch_baseline import gptq, prepare  # beside this script: one PyTorch GPTQ solver

STAGES = [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
          ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--calib", required=True, type=Path)
    parser.add_argument("--seq-len", required=True, type=int)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--bits", required=True, type=int)
    parser.add_argument("--group-size", required=True, type=int)
    parser.add_argument("--act-order", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    start = time.perf_counter()

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=torch.float32).eval()
    layers = model.model.layers
    names = dict(layers[0].named_modules())
    missing = [name for stage in STAGES for name in stage if name not in names]
    if missing:
        raise SystemExit(f"reference_gptq: {args.model}: its decoder layers have no "
                         f"{', '.join(missing)} (a Llama-family layout is needed)")
    tokens = np.fromfile(args.calib, dtype="<i4").reshape(-1, args.seq_len)[: args.rows]
    batches = [torch.from_numpy(tokens[i:i + args.batch].astype(np.int64))
               for i in range(0, len(tokens), args.batch)]

    # The first layer's inputs and keyword arguments (mask, rotary tables), captured by stopping
    # the model's forward there.
    captured = []

    class Stop(Exception):
        pass

    def capture(module, inputs, kwargs):
        # No key/value cache: each replay of a layer must attend to its own sample only.
        kwargs = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "use_cache")}
        captured.append((inputs[0], kwargs))
        raise Stop

    handle = layers[0].register_forward_pre_hook(capture, with_kwargs=True)
    with torch.no_grad():
        for batch in batches:
            try:
                model(batch, use_cache=False)
            except Stop:
                pass
    handle.remove()
    hidden = [h for h, _ in captured]
    kwargs = [k for _, k in captured]

    with torch.no_grad():
        for index, layer in enumerate(layers):
            modules = dict(layer.named_modules())
            for stage in STAGES:
                hessians = {name: torch.zeros(modules[name].in_features, modules[name].in_features,
                                              dtype=torch.float64) for name in stage}
                counts = {name: 0 for name in stage}

                def accumulate(name):
                    def hook(module, inputs, output):
                        x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
                        hessians[name] += x.T @ x
                        counts[name] += x.shape[0]
                    return hook

                handles = [modules[name].register_forward_hook(accumulate(name)) for name in stage]
                for h, k in zip(hidden, kwargs):
                    layer(h, **k)
                for handle in handles:
                    handle.remove()
                for name in stage:
                    linear = modules[name]
                    h = hessians[name] * (2.0 / counts[name])
                    hinv, dead, perm = prepare(h.to(dtype), args.act_order)
                    linear.weight.copy_(gptq(linear.weight, hinv, dead, perm, args.bits,
                                             args.group_size).float())
            hidden = [layer(h, **k) for h, k in zip(hidden, kwargs)]
            hidden = [h[0] if isinstance(h, tuple) else h for h in hidden]
            print(f"layer {index} done at {time.perf_counter() - start:.1f} s", flush=True)

    model.save_pretrained(str(args.out))
    record = {"bits": args.bits, "group_size": args.group_size, "act_order": args.act_order,
              "dtype": args.dtype, "calib": str(args.calib), "rows": len(tokens),
              "seconds": round(time.perf_counter() - start, 1)}
    (args.out / "reference_gptq.json").write_text(json.dumps(record, indent=1) + "\n")
    print("REFERENCE " + json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
