#!/usr/bin/env bash
# On the GPU machine (the device tool), after scripts/device-pack.sh here: what a user runs, timed
# beside the layer bench in the same call. Logs go to $OUT (or ./device-out).
#
#   bash scripts/device-speed.sh check    # GPU tests, stories260k on both backends and 1/2 ranks,
#                                         # the 7B layer bench and qshard-quantize's 7B layers
#   bash scripts/device-speed.sh models   # whole models: 7B from an on-disk safetensors directory,
#                                         # 70B generated on the fly (QSHARD_70B_LAYERS to cut it)
set -uo pipefail
source .dev/env.sh
out=${OUT:-device-out}
mkdir -p "$out"
bin=.dev/bin
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-8}
phase=${1:-check}
threads=$(nproc)
job=(--bits 4 --group_size 128 --samples 128 --seq_len 2048 --backend cuda --threads "$threads")

# Samples the device's used memory every 200 ms into $1 until killed; prints the peak at the end.
sample_memory() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$1" & echo $!; }
peak_memory() { sort -n "$1" | tail -1 | awk '{printf "peak device memory %.1f GiB\n", $1 / 1024}'; }

if [[ $phase == check ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
  echo "== GPU tests"
  QSHARD_SHARED_DIR=.dev "$bin/qshard_gpu_tests" 2>&1 | tee "$out/gpu_tests.log" | grep -E "FAILED|PASSED|SKIPPED|tests ran" | tail -20
  echo "== stories260k: cpu, cuda (1 rank NCCL), cuda with --collectives mpi on 1 and 2 ranks"
  s=(--model .dev/models/stories260k --calib .dev/data/stories260k/calib_128x256.i32 --samples 128
     --seq_len 256 --bits 4 --group_size 32 --act_order true --quiet)
  "$bin/qshard-quantize" "${s[@]}" --backend cpu --out /tmp/s-cpu.h5
  "$bin/qshard-quantize" "${s[@]}" --backend cuda --out /tmp/s-cuda.h5
  "$bin/qshard-quantize" "${s[@]}" --backend cuda --collectives mpi --out /tmp/s-mpi1.h5
  mpirun -np 2 --oversubscribe "$bin/qshard-quantize" "${s[@]}" --backend cuda --collectives mpi --out /tmp/s-mpi2.h5
  for f in cpu cuda mpi1 mpi2; do
    echo "$f $("$bin/qshard-inspect" --checkpoint /tmp/s-$f.h5 --hash) $("$bin/qshard-eval" --model .dev/models/stories260k \
      --checkpoint /tmp/s-$f.h5 --tokens .dev/data/stories260k/eval_256x256.i32 --seq_len 256 --json)"
  done | tee "$out/stories260k.txt"
  echo "== layer bench, Llama-2-7B shape"
  "$bin/qshard-bench-layer-gpu" --model llama2-7b --repeats 2 2>&1 | tee "$out/bench_layer_7b.log" | tail -3
  echo "== qshard-quantize, Llama-2-7B shape, generated, first ${QSHARD_7B_LAYERS:-6} layers"
  m=$(sample_memory "$out/mem_7b.txt")
  "$bin/qshard-quantize" --model synthetic:llama2-7b "${job[@]}" --stop_after_layers "${QSHARD_7B_LAYERS:-6}" \
      --out /tmp/l7b.h5 2>&1 | tee "$out/quantize_7b_layers.log" | tail -9
  kill "$m"; peak_memory "$out/mem_7b.txt"
fi

if [[ $phase == models ]]; then
  echo "== Llama-2-7B shape written as bf16 safetensors shards, then quantized from disk"
  rm -rf /tmp/llama2-7b-synthetic /tmp/m7b.h5 /tmp/m7b.h5.parts
  /usr/bin/time -f "write: %e s, peak host %M KiB" "$bin/qshard-inspect" --write-synthetic llama2-7b \
      --out /tmp/llama2-7b-synthetic 2>&1 | tee "$out/write_7b.log"
  sync; du -sh /tmp/llama2-7b-synthetic
  m=$(sample_memory "$out/mem_m7b.txt")
  /usr/bin/time -f "qshard-quantize 7B from disk: %e s wall, peak host %M KiB" \
      "$bin/qshard-quantize" --model /tmp/llama2-7b-synthetic "${job[@]}" --out /tmp/m7b.h5 2>&1 \
      | tee "$out/quantize_7b_disk.log" | tail -6
  kill "$m"; peak_memory "$out/mem_m7b.txt"
  ls -la /tmp/m7b.h5
  echo "== Llama-3-70B shape, generated on the fly"
  m=$(sample_memory "$out/mem_70b.txt")
  stop=()
  [[ -n ${QSHARD_70B_LAYERS:-} ]] && stop=(--stop_after_layers "$QSHARD_70B_LAYERS")
  /usr/bin/time -f "qshard-quantize 70B: %e s wall, peak host %M KiB" \
      "$bin/qshard-quantize" --model synthetic:llama3-70b "${job[@]}" "${stop[@]}" --out /tmp/m70b.h5 2>&1 \
      | tee "$out/quantize_70b.log" | tail -6
  kill "$m"; peak_memory "$out/mem_70b.txt"
fi
