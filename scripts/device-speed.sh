#!/usr/bin/env bash
# On the GPU machine (the device tool), after scripts/device-pack.sh here: what a user runs, timed
# beside the layer bench in the same call. Logs go to $OUT (or ./device-out). Steps, in the order
# given (default: all of them):
#
#   tests    GPU tests; stories260k on cpu, cuda (NCCL), cuda --collectives mpi on 1, 2, 4 ranks
#   gputests the GPU tests alone
#   bench7   the Llama-2-7B layer bench, then qshard-quantize's first QSHARD_7B_LAYERS (6) layers
#   disk7    a synthetic Llama-2-7B written as bf16 safetensors shards, quantized whole from disk
#   bench70  the Llama-3-70B layer bench, then qshard-quantize's first QSHARD_70B_LAYERS (10) layers
#   app70    a whole synthetic Llama-3-70B (layer files on the disk, the checkpoint in /dev/shm)
#   kernels  qshard-bench-gpu (Hessian, factorisation, solve) beside the PyTorch GPTQ baseline
#   peer7    GPTQModel (../shared/peer, wheels in .whl/) on QSHARD_PEER_LAYERS (3) Llama-2-7B-shaped
#            layers with its CUDA extension, for the ratio measured in the same call
#   peer70   the same on the Llama-3-70B shape
set -uo pipefail
source .dev/env.sh
out=${OUT:-device-out}
mkdir -p "$out"
bin=.dev/bin
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-8}
threads=$(nproc)
job=(--bits 4 --group_size 128 --samples 128 --seq_len 2048 --backend cuda --threads "$threads")
steps=("$@")
((${#steps[@]})) || steps=(tests bench7 disk7 bench70)

# Samples the device's used memory every 200 ms into $1 (returns the sampler's pid).
sample_memory() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$1" & echo $!; }
peak_memory() { sort -n "$1" | tail -1 | awk '{printf "peak device memory %.1f GiB\n", $1 / 1024}'; }
# qshard-quantize with wall time, peak host RSS and peak device memory.
quantize() {
  local name=$1; shift
  local m; m=$(sample_memory "$out/mem_$name.txt")
  /usr/bin/time -f "$name: %e s wall (process start to exit), peak host %M KiB" timeout "${QSHARD_TIMEOUT:-540}" \
    "$bin/qshard-quantize" "$@" 2>&1 \
    | tee "$out/quantize_$name.log" | tail -12
  kill "$m"; peak_memory "$out/mem_$name.txt" | tee -a "$out/quantize_$name.log"
}

for step in "${steps[@]}"; do
  echo "== $step ($(date +%T))"
  case $step in
    tests|gputests)
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
      df -h /tmp /dev/shm | tee -a "$out/gpu.txt"
      QSHARD_SHARED_DIR=.dev timeout 300 "$bin/qshard_gpu_tests" > "$out/gpu_tests.log" 2>&1
      grep -E "FAILED|PASSED|tests ran|Failure|Expected|Which is|actual" "$out/gpu_tests.log" | tail -30
      [[ $step == gputests ]] && continue
      s=(--model .dev/models/stories260k --calib .dev/data/stories260k/calib_128x256.i32 --samples 128
         --seq_len 256 --bits 4 --group_size 32 --act_order true --quiet)
      "$bin/qshard-quantize" "${s[@]}" --backend cpu --out /tmp/s-cpu.h5
      "$bin/qshard-quantize" "${s[@]}" --backend cuda --out /tmp/s-cuda.h5
      "$bin/qshard-quantize" "${s[@]}" --backend cuda --collectives mpi --out /tmp/s-mpi1.h5
      for n in 2 4; do
        mpirun -np $n --oversubscribe "$bin/qshard-quantize" "${s[@]}" --backend cuda --collectives mpi \
          --out /tmp/s-mpi$n.h5
      done
      for f in cpu cuda mpi1 mpi2 mpi4; do
        echo "$f $("$bin/qshard-inspect" --checkpoint /tmp/s-$f.h5 --hash) $("$bin/qshard-eval" \
          --model .dev/models/stories260k --checkpoint /tmp/s-$f.h5 \
          --tokens .dev/data/stories260k/eval_256x256.i32 --seq_len 256 --json)"
      done | tee "$out/stories260k.txt" ;;
    bench7)
      timeout 200 "$bin/qshard-bench-layer-gpu" --model llama2-7b --repeats 2 2>&1 | tee "$out/bench_7b.log" | tail -4
      quantize 7b_layers --model synthetic:llama2-7b "${job[@]}" --stop_after_layers "${QSHARD_7B_LAYERS:-6}" --out /tmp/l7b.h5 ;;
    disk7)
      rm -rf /tmp/llama2-7b-synthetic /tmp/m7b.h5 /tmp/m7b.h5.parts /tmp/l7b.h5.parts
      /usr/bin/time -f "write: %e s, peak host %M KiB" "$bin/qshard-inspect" --write-synthetic llama2-7b \
        --out /tmp/llama2-7b-synthetic 2>&1 | tee "$out/write_7b.log"
      sync; du -sh /tmp/llama2-7b-synthetic; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
      # Cold: the weights come from the disk; warm: from the page cache (a fast file system).
      quantize 7b_disk_cold --model /tmp/llama2-7b-synthetic "${job[@]}" --out /tmp/m7b.h5
      quantize 7b_disk_warm --model /tmp/llama2-7b-synthetic "${job[@]}" --force --out /tmp/m7b.h5
      ls -la /tmp/m7b.h5; rm -rf /tmp/llama2-7b-synthetic /tmp/m7b.h5 ;;
    bench70)
      timeout 200 "$bin/qshard-bench-layer-gpu" --model llama3-70b --repeats 1 2>&1 | tee "$out/bench_70b.log" | tail -4
      quantize 70b_layers --model synthetic:llama3-70b "${job[@]}" --stop_after_layers "${QSHARD_70B_LAYERS:-10}" --out /tmp/l70b.h5
      rm -rf /tmp/l70b.h5.parts ;;
    kernels)
      "$bin/qshard-bench-gpu" ${QSHARD_BENCH_ARGS:-} 2>&1 | tee "$out/bench_gpu.log" | tail -30
      PYTHONUNBUFFERED=1 python3 bench/gptq_torch_baseline.py ${QSHARD_BASELINE_ARGS:-} 2>&1 \
        | tee "$out/baseline.log" | tail -20 ;;
    app70)
      # The 64 GiB disk holds the 36 GB of finished layers, not the checkpoint beside them.
      quantize 70b_whole --model synthetic:llama3-70b "${job[@]}" --parts_dir /tmp/m70b.parts --out /dev/shm/m70b.h5
      ls -la /dev/shm/m70b.h5; rm -rf /dev/shm/m70b.h5 /tmp/m70b.parts ;;
    peer7|peer70)
      [[ -d /tmp/site ]] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl
      shape=()
      [[ $step == peer70 ]] && shape=(--hidden 8192 --intermediate 28672 --heads 64 --kv-heads 8 --vocab 128256)
      PYTHONPATH=/tmp/site timeout 500 python3 .dev/peer_gptqmodel.py --layers "${QSHARD_PEER_LAYERS:-3}" \
        --gptq-cuda "${shape[@]}" 2>&1 | tee "$out/$step.log" | tail -3 ;;
  esac
done
