#!/usr/bin/env python3
"""GPTQModel quantizes a model on the same calibration tokens and settings as a qshard sweep.

    python bench/peer_quality.py --model models/SmolLM2-135M-Instruct \
        --calib data/smollm2-pydocs/calib_128x512.i32 --seq-len 512 --device cuda:0 \
        --out out/peer-smollm2 4:32:0 3:64:1 ...

Each point is BITS:GROUP:ACT_ORDER (GROUP -1: one group per row). Every point is quantized with
GPTQModel (asymmetric, damp 0.01, true-sequential, no group-aware reordering, float32 weights
and activations: plain GPTQ as qshard runs it) and saved as a GPTQ directory OUT/wBITS-gGROUP-aACT
that `qshard-eval --model DIR --reference MODEL` scores with the same code as `qshard-sweep`.
Checkpoints are saved as gptq_v2 (zero points as they are), so that the quantizer is scored, not
the file layout: GPTQModel's own default, v1 (--format gptq), stores zero - 1, and a zero point of
0 (an asymmetric group almost all positive: hundreds at 2 bits, a few at 3) wraps to the field's
largest value, which qshard-eval reads as 2^bits like AutoGPTQ's kernels (docs/FORMATS.md;
bench/gptq_zeros_v1_to_v2.py repairs such a file). Prints one JSON line per point (times, or the
error of a point GPTQModel does not support).
Needs torch, transformers and gptqmodel (the interop venv here, or the GPU machine's wheels).

The same arithmetic on every device: fp32 matmuls in IEEE precision (no TF32), the eager GPTQ
column loop (GPTQModel's JIT-built CUDA solve extension only with --gptq-cuda), block packing,
and the device pinned in QuantizeConfig (GPTQModel.load picks a visible GPU by itself otherwise).
"""
import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
if "--gptq-cuda" not in sys.argv:  # read at import: the CPU's eager GPTQ loop on CUDA too
    os.environ["GPTQMODEL_DISABLE_GPTQ_CUDA"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.backends.fp32_precision = "ieee"
torch.backends.cuda.matmul.fp32_precision = "ieee"
torch.backends.cudnn.fp32_precision = "ieee"


def parse_point(text):
    bits, group, act = (int(v) for v in text.split(":"))
    return bits, group, bool(act)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--calib", required=True, type=Path)
    parser.add_argument("--seq-len", required=True, type=int)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--gptq-cuda", action="store_true",
                        help="let GPTQModel solve with its JIT-built CUDA extension")
    parser.add_argument("--format", default="gptq_v2", choices=["gptq", "gptq_v2"],
                        help="checkpoint layout: gptq_v2 (zeros as they are; the default) or gptq "
                             "(v1, GPTQModel's own default: zero - 1 stored, a zero of 0 wraps)")
    parser.add_argument("points", nargs="+", type=parse_point)
    args = parser.parse_args()

    from importlib.metadata import version

    from gptqmodel import GPTQModel, QuantizeConfig

    tokens = np.fromfile(args.calib, dtype="<i4").reshape(-1, args.seq_len)[: args.rows]
    rows = [{"input_ids": torch.from_numpy(r.astype(np.int64))[None],
             "attention_mask": torch.ones(1, args.seq_len, dtype=torch.int64)} for r in tokens]
    args.out.mkdir(parents=True, exist_ok=True)
    for bits, group, act in args.points:
        name = f"w{bits}-g{group}-a{int(act)}"
        target = args.out / name
        shutil.rmtree(target, ignore_errors=True)
        result = {"peer": "gptqmodel", "version": version("gptqmodel"), "point": name,
                  "torch": torch.__version__, "transformers": version("transformers"),
                  "gptq_cuda": args.gptq_cuda, "format": args.format,
                  "bits": bits, "group_size": group, "act_order": act, "device": args.device,
                  "calibration_rows": len(rows), "dir": str(target)}
        start = time.perf_counter()
        try:
            config = QuantizeConfig(bits=bits, group_size=group, desc_act=act, sym=False,
                                    damp_percent=0.01, act_group_aware=False,
                                    offload_to_disk=False, device=args.device,
                                    pack_impl="block", format=args.format)
            model = GPTQModel.load(str(args.model), config, dtype=torch.float32)
            loaded = time.perf_counter()
            model.quantize(rows, batch_size=4)
            quantized = time.perf_counter()
            model.save(str(target))
            result.update(load_s=round(loaded - start, 2), quantize_s=round(quantized - loaded, 2),
                          save_s=round(time.perf_counter() - quantized, 2))
            del model
        except Exception as error:  # a point GPTQModel does not support: recorded, not fatal
            result["error"] = f"{type(error).__name__}: {error}"
            traceback.print_exc(file=sys.stderr)
            shutil.rmtree(target, ignore_errors=True)
        result["total_s"] = round(time.perf_counter() - start, 2)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        print("PEER " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
