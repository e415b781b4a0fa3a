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

With --check DIR instead of --out, the driver installs DIR's weights (a GPTQ directory with gptq_v2
zero points, or a dense one such as `qshard-export --format float` writes) module by module instead
of its own solve, and asks of each module whether it is a GPTQ solution of the Hessian its inputs
have in the model with DIR's own earlier modules: the proxy loss tr((W - Q) H (W - Q)^T) of DIR's
weights Q over that of this script's solve on the same H, and the fraction of weights equal to 0.2
% (so that fp16 and float32 scales compare). A tool whose driver fed its solver other inputs (a
stage through floating-point modules, another sample's keys) scores ratios well above 1 there.
--layers N checks the first N layers only. Prints one CHECK line per module and a CHECK-SUMMARY
line (JSON).
Needs torch and transformers (the interop venv).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from gptq_torch_baseline import gptq, prepare  # beside this script: one PyTorch GPTQ solver
from hidden_state_drift import linear_weights  # beside this script: dense or gptq_v2 directories

STAGES = [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
          ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]


def check_module(index, name, weight, given, solved, hessian):
    """One CHECK line: DIR's weights against this script's solve on the same Hessian."""

    def loss(q):
        d = (weight.double() - q.double())
        return float(torch.einsum("ij,jk,ik->", d, hessian, d))

    same = torch.isclose(given, solved.float(), rtol=2e-3, atol=1e-7).double().mean()
    record = {"module": f"model.layers.{index}.{name}",
              "loss_ratio": round(loss(given) / loss(solved), 5), "same": round(float(same), 4)}
    print("CHECK " + json.dumps(record), flush=True)
    return record


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
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write the quantized model here")
    target.add_argument("--check", type=Path, help="check this directory's weights instead")
    parser.add_argument("--layers", type=int, default=0, help="with --check: the first N layers")
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
    checked_layers = layers[: args.layers] if args.check and args.layers > 0 else layers
    given = {}
    if args.check:
        given = linear_weights(args.check, [f"model.layers.{i}.{name}" for i in
                                            range(len(checked_layers)) for st in STAGES for name in st])
    checks = []

    with torch.no_grad():
        for index, layer in enumerate(checked_layers):
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
                    solved = gptq(linear.weight, hinv, dead, perm, args.bits, args.group_size)
                    if args.check:
                        q = given[f"model.layers.{index}.{name}"].float()
                        checks.append(check_module(index, name, linear.weight, q, solved, h))
                        linear.weight.copy_(q)
                    else:
                        linear.weight.copy_(solved.float())
            hidden = [layer(h, **k) for h, k in zip(hidden, kwargs)]
            hidden = [h[0] if isinstance(h, tuple) else h for h in hidden]
            print(f"layer {index} done at {time.perf_counter() - start:.1f} s", flush=True)

    if args.check:
        ratios = torch.tensor([c["loss_ratio"] for c in checks], dtype=torch.float64)
        worst = max(checks, key=lambda c: c["loss_ratio"])
        summary = {"checked": str(args.check), "modules": len(checks),
                   "geomean_loss_ratio": round(float(ratios.log().mean().exp()), 5),
                   "max_loss_ratio": worst["loss_ratio"], "max_at": worst["module"],
                   "min_same": min(c["same"] for c in checks), "bits": args.bits,
                   "group_size": args.group_size, "act_order": args.act_order, "rows": len(tokens)}
        print("CHECK-SUMMARY " + json.dumps(summary), flush=True)
        return
    model.save_pretrained(str(args.out))
    record = {"bits": args.bits, "group_size": args.group_size, "act_order": args.act_order,
              "dtype": args.dtype, "calib": str(args.calib), "rows": len(tokens),
              "seconds": round(time.perf_counter() - start, 1)}
    (args.out / "reference_gptq.json").write_text(json.dumps(record, indent=1) + "\n")
    print("REFERENCE " + json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
