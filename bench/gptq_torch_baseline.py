#!/usr/bin/env python3
"""A straightforward PyTorch GPTQ, written from the paper's pseudo-code, as the baseline for
qshard-bench-gpu: fp32 on the GPU, lazy batches of 128 columns solved column by column, 4 bits,
group 128 (asymmetric min/max), optional act_order. Same shapes and the same H construction as the
C++ benchmark: per unit, X = Z + F B (16 shared factors) with four channels scaled x10, x20, x35,
x50; H accumulated as the reference tools do (fp32, H = 2/n sum X^T X). Timings with
torch.cuda.Event after a warm-up, medians of --repeats.

    python3 bench/gptq_torch_baseline.py [--shapes 4096x4096,...] [--repeats 3] [--units 128]
                                         [--tokens-per-unit 2048] [--act-order off|on|both]
                                         [--json FILE]
"""
import argparse
import json
import math

import torch

SHAPES = "4096x4096,11008x4096,4096x11008,8192x8192,1024x8192,28672x8192,8192x28672"
BITS, GROUP, BLOCK, DAMP = 4, 128, 128, 0.01


def timed(fn):
    """(result, milliseconds) of fn() measured with CUDA events."""
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    result = fn()
    stop.record()
    stop.synchronize()
    return result, start.elapsed_time(stop)


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def bf16_gemm_tflops(n=8192, repeats=5):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = [timed(lambda: a @ b)[1] for _ in range(repeats)]
    return 2 * n**3 / (median(times) * 1e-3) / 1e12


def make_unit(tokens, features, basis, generator):
    """Activations of one calibration unit: Z + F B, four channels scaled."""
    z = torch.randn(tokens, features, device="cuda", generator=generator)
    factors = torch.randn(tokens, basis.shape[0], device="cuda", generator=generator)
    x = z + factors @ basis
    for k, scale in enumerate((10.0, 20.0, 35.0, 50.0)):
        x[:, ((k + 1) * 2654435761) % features] *= scale
    return x


def accumulate_hessian(features, units, tokens):
    """The reference add_batch in fp32; returns (H, accumulation milliseconds)."""
    generator = torch.Generator(device="cuda").manual_seed(7)
    basis = torch.randn(16, features, device="cuda", generator=generator)
    h = torch.zeros(features, features, device="cuda")
    n, total = 0, 0.0

    def add(x):
        nonlocal h, n
        h *= n / (n + x.shape[0])
        n += x.shape[0]
        inp = math.sqrt(2 / n) * x.float().t()
        h += inp.matmul(inp.t())

    add(make_unit(tokens, features, basis, generator))  # warm-up unit (discarded below)
    h.zero_()
    n = 0
    for _ in range(units):
        x = make_unit(tokens, features, basis, generator)
        total += timed(lambda: add(x))[1]
    return h, total


def find_params(x, maxq):
    """Per-row asymmetric min/max scale and zero of x [rows, cols] (the reference Quantizer)."""
    xmin = torch.minimum(x.min(1).values, torch.zeros(1, device=x.device))
    xmax = torch.maximum(x.max(1).values, torch.zeros(1, device=x.device))
    both = (xmin == 0) & (xmax == 0)
    xmin[both], xmax[both] = -1, +1
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def prepare(h, act_order, damp_percent=DAMP):
    """Dead inputs, permutation and the upper Cholesky factor of H^-1 (the reference route)."""
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else None
    if act_order:
        h = h[perm][:, perm]
    damp = damp_percent * torch.mean(torch.diag(h))
    idx = torch.arange(h.shape[0], device=h.device)
    h[idx, idx] += damp
    h = torch.linalg.cholesky(h)
    h = torch.cholesky_inverse(h)
    hinv = torch.linalg.cholesky(h, upper=True)
    return hinv, dead, perm


def gptq(w, hinv, dead, perm, bits=BITS, group=GROUP, block=BLOCK):
    """The blocked column loop of the paper (group parameters as the reference code computes them:
    a group's at its first column from the weights as the previous lazy batches left them; group
    <= 0: one group per row, from the weights before the solve), in hinv's dtype."""
    maxq = 2**bits - 1
    w = w.clone().to(hinv.dtype)
    w[:, dead] = 0
    scale = zero = None
    if group <= 0:
        scale, zero = find_params(w, maxq)
    if perm is not None:
        w = w[:, perm]
    q = torch.zeros_like(w)
    columns = w.shape[1]
    for i1 in range(0, columns, block):
        i2 = min(i1 + block, columns)
        count = i2 - i1
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(count):
            col = w1[:, i]
            d = hinv1[i, i]
            if group > 0 and (i1 + i) % group == 0:
                scale, zero = find_params(w[:, (i1 + i):(i1 + i + group)], maxq)
            qc = quantize(col.unsqueeze(1), scale, zero, maxq).flatten()
            q1[:, i] = qc
            e = (col - qc) / d
            w1[:, i:] -= e.unsqueeze(1).matmul(hinv1[i, i:].unsqueeze(0))
            err1[:, i] = e
        q[:, i1:i2] = q1
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    if perm is not None:
        q = q[:, torch.argsort(perm)]
    return q


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default=SHAPES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--tokens-per-unit", type=int, default=2048)
    parser.add_argument("--act-order", choices=["off", "on", "both"], default="both")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in qshard's solver
    torch.backends.cudnn.allow_tf32 = False
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    act_orders = {"off": [False], "on": [True], "both": [False, True]}[args.act_order]

    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    gemm = bf16_gemm_tflops()
    print(f"torch bf16 GEMM 8192^3: {gemm:.1f} TFLOP/s")
    print(f"Hessian units: {args.units} x {args.tokens_per_unit} tokens (fp32 accumulation); "
          f"{BITS} bits, group {GROUP}, block {BLOCK}, damp {DAMP}")
    hessians, rows = {}, []
    for out_features, in_features in shapes:
        if in_features not in hessians:
            h, ms = accumulate_hessian(in_features, args.units, args.tokens_per_unit)
            tflops = 2 * args.tokens_per_unit * args.units * in_features**2 / (ms * 1e-3) / 1e12
            hessians[in_features] = (h, ms, tflops)
            print(f"H[{in_features}]: {ms:.1f} ms ({tflops:.1f} TFLOP/s)", flush=True)
        h, h_ms, h_tflops = hessians[in_features]
        generator = torch.Generator(device="cuda").manual_seed(99)
        w = 0.02 * torch.randn(out_features, in_features, device="cuda", generator=generator)
        for act_order in act_orders:
            factor_times, solve_times = [], []
            for r in range(args.repeats + 1):  # the first is the warm-up
                (hinv, dead, perm), factor_ms = timed(lambda: prepare(h, act_order))
                q, solve_ms = timed(lambda: gptq(w, hinv, dead, perm))
                if r > 0:
                    factor_times.append(factor_ms)
                    solve_times.append(solve_ms)
            row = dict(out=out_features, inp=in_features, act_order=act_order, hessian_ms=h_ms,
                       hessian_tflops=h_tflops, factor_ms=median(factor_times),
                       solve_ms=median(solve_times))
            rows.append(row)
            print(f"{out_features:6d}x{in_features:<6d} act_order={'on ' if act_order else 'off'} "
                  f"factor {row['factor_ms']:8.1f} ms  solve {row['solve_ms']:9.1f} ms", flush=True)
            del q
        del w
        torch.cuda.empty_cache()

    print(f"\n{'shape':13s} {'act':4s} {'hessian_ms':>12s} {'TFLOP/s':>9s} {'%GEMM':>8s} "
          f"{'factor_ms':>11s} {'solve_ms':>11s}")
    for r in rows:
        print(f"{r['out']:6d}x{r['inp']:<6d} {'on' if r['act_order'] else 'off':4s} "
              f"{r['hessian_ms']:12.1f} {r['hessian_tflops']:9.1f} "
              f"{100 * r['hessian_tflops'] / gemm:7.1f}% {r['factor_ms']:11.1f} "
              f"{r['solve_ms']:11.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), torch_bf16_tflops=gemm,
                           units=args.units, tokens_per_unit=args.tokens_per_unit, rows=rows), f,
                      indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
