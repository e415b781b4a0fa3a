#!/usr/bin/env python3
"""A model of a Llama-3.1-405B-shaped qshard job on 8 nodes x 8 H200 with --layer_groups G.

Inputs (docs/PERFORMANCE.md): the measured stages of a Llama-3-70B layer on one H200 with
128 x 2048 calibration tokens (`qshard-quantize --model synthetic:llama3-70b`, layers 2-80: fwd
0.95, hess 1.00, factor 1.00, solve 1.60 s), NVLink all-reduce bus bandwidth 342 GB/s (measured
on the two-H200 host), and one assumption: 50 GB/s per GPU between nodes (one 400 Gb/s NIC per
GPU). Stages scale from 70B to 405B by their flops: forward and Hessians by parameters, the
factorisation by the sum of n^3 over the Hessians, the solve by the sum of out * in^2.
Prints a markdown table: per-layer time, wall time, bytes per rank and link, memory per rank.
"""
import sys

LAYERS, TOKENS = 126, 128 * 2048
H, INTER, Q_HEADS, KV_HEADS, HEAD = 16384, 53248, 128, 8, 128
KV = KV_HEADS * HEAD
H70, INTER70, KV70 = 8192, 28672, 1024
NVLINK, NET = 342e9, 50e9  # bytes/s: measured intra-node bus bandwidth; assumed per-GPU network
GPUS_PER_NODE, RANKS = 8, 64


def shapes(h, inter, kv):  # (out, in) of q, k, v, o, gate, up, down
    return [(h, h), (kv, h), (kv, h), (h, h), (inter, h), (inter, h), (h, inter)]


def params(s):
    return sum(o * i for o, i in s)


def factor_work(h, inter):  # Hessians of the attention, o, MLP and down inputs
    return 3 * h ** 3 + inter ** 3


def solve_work(s):
    return sum(o * i * i for o, i in s)


s405, s70 = shapes(H, INTER, KV), shapes(H70, INTER70, KV70)
scale_p = params(s405) / params(s70)
scale_f = factor_work(H, INTER) / factor_work(H70, INTER70)
scale_s = solve_work(s405) / solve_work(s70)
fwd, hess, factor, solve = 0.95 * scale_p, 1.00 * scale_p, 1.00 * scale_f, 1.60 * scale_s
full_forward = 0.95 / 2.3 * scale_p  # one forward of all tokens through a layer (fwd ~ 2.3 of them)
hessian_bytes = 8 * (3 * H * H + INTER * INTER)  # packed int64 limbs on the GPU
weight_bytes = params(s405) * (0.5 + 2 * 2 / 128)  # 4-bit codes + fp16 scale and zero per 128
units_bytes = TOKENS * H * 2  # bf16 activations of all calibration tokens

print(f"405B layer on one H200 (scaled from 70B): forward {fwd:.1f} s, Hessians {hess:.1f} s, "
      f"factor {factor:.1f} s, solve {solve:.1f} s; Hessian limbs {hessian_bytes / 1e9:.1f} GB",
      file=sys.stderr)
print("| G | ranks per group | layers per group | per layer (fwd+hess, factor, solve, reduce, "
      "exchange) | last group starts after | wall | bytes per rank per layer (reduce + exchange) "
      "| boundary bytes per rank | memory per rank |")
print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
for groups in (1, 8, 64):
    r = RANKS // groups
    link = NVLINK if r <= GPUS_PER_NODE else NET
    reduce_bytes = 2 * (r - 1) / r * hessian_bytes
    exchange_bytes = (r - 1) / r * weight_bytes
    reduce_s, exchange_s = reduce_bytes / link, exchange_bytes / link
    per_layer = (fwd + hess) / r + factor + solve / r + reduce_s + exchange_s
    block = LAYERS / groups
    boundary_bytes = units_bytes * 2 / r  # fp32 on the wire
    start = (groups - 1) * (block * full_forward / r + boundary_bytes / NET)
    wall = start + block * per_layer
    memory = (params(s405) * 6 + INTER * INTER * 8 + INTER * INTER * 4 + INTER * INTER * 8
              + 2 * units_bytes / r)
    print(f"| {groups} | {r} | {block:.1f} | {per_layer:.1f} s ({(fwd + hess) / r:.2f}, {factor:.1f}, "
          f"{solve / r:.2f}, {reduce_s:.2f}, {exchange_s:.2f}) | {start:.0f} s | {wall / 60:.1f} min "
          f"| {(reduce_bytes + exchange_bytes) / 1e9:.1f} GB | {boundary_bytes / 1e9:.2f} GB "
          f"| {memory / 1e9:.0f} GB |")
