#!/usr/bin/env bash
# On a two-GPU device machine: qshard-quantize of stories260k with the CUDA backend on 1 rank and
# on 2 ranks (one GPU each, NCCL for the Hessian all-reduce); the quantized tensors must be bitwise
# identical (same hash) and the NCCL all-reduce path is exercised with two ranks.
set -uo pipefail
source .dev/env.sh
out=${OUT:-device-out}
mkdir -p "$out"
args=(--model .dev/models/stories260k --calib .dev/data/stories260k/calib_128x256.i32 --samples 128
      --seq_len 256 --bits 4 --group_size 32 --act_order --backend cuda)
.dev/bin/qshard-quantize "${args[@]}" --out /tmp/one.h5 2>&1 | tee "$out/one.log" | tail -3
mpirun -np 2 .dev/bin/qshard-quantize "${args[@]}" --out /tmp/two.h5 2>&1 | tee "$out/two.log" | tail -3
for f in one two; do echo "$f: $(.dev/bin/qshard-inspect --checkpoint /tmp/$f.h5 --hash)"; done | tee "$out/hashes.txt"
[[ $(sort -u -k2 "$out/hashes.txt" | wc -l) -eq 1 ]] && echo "IDENTICAL" || echo "DIFFERENT"
