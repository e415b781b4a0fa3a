#!/usr/bin/env bash
# On the GPU machine (the device tool), from the checkout's root, after scripts/device-pack.sh
# here: GPU tests against the CPU backend, the GPU benchmark beside the PyTorch baseline, and
# qshard-quantize of stories260k on both backends. Logs go to $OUT (or ./device-out).
set -uo pipefail
source .dev/env.sh
out=${OUT:-device-out}
mkdir -p "$out"
bin=.dev/bin
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-8}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

echo "== GPU tests"
export QSHARD_SHARED_DIR=.dev  # stories260k for the GPU tests
"$bin/qshard_gpu_tests" 2>&1 | tee "$out/gpu_tests.log" | tail -25

echo "== qshard-quantize stories260k: cpu vs cuda backend"
for backend in cpu cuda; do
  "$bin/qshard-quantize" --model .dev/models/stories260k --calib .dev/data/stories260k/calib_128x256.i32 \
      --samples 128 --seq_len 256 --bits 4 --group_size 32 --backend $backend --quiet --out "/tmp/s-$backend.h5" \
      2>&1 | tail -2
  "$bin/qshard-eval" --model .dev/models/stories260k --checkpoint "/tmp/s-$backend.h5" \
      --tokens .dev/data/stories260k/eval_256x256.i32 --seq_len 256 --json | tee "$out/eval-$backend.json"
done

if [[ -x "$bin/qshard-bench-gpu" ]]; then
  echo "== GPU benchmark"
  "$bin/qshard-bench-gpu" ${QSHARD_BENCH_ARGS:-} 2>&1 | tee "$out/bench_gpu.log" | tail -30
fi
if [[ -f bench/gptq_torch_baseline.py ]]; then
  echo "== PyTorch baseline"
  PYTHONUNBUFFERED=1 python3 bench/gptq_torch_baseline.py ${QSHARD_BASELINE_ARGS:-} 2>&1 | tee "$out/baseline.log" | tail -20
fi
