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
#   smollm2-stash  keeps the GGUF quarters carried in .devm/ in /tmp/qshard-smollm2 (call 1: carry
#            only .devm)
#   smollm2-model  with the other quarters in .devn/ (call 2: carry only .devn), joins and converts
#            the GGUF (scripts/gguf_to_hf.py; its sha256 printed against get-models.sh's) into
#            /tmp/smollm2-hf, then installs it (smollm2-install)
#   smollm2-install  models/SmolLM2-135M-Instruct and data/smollm2-pydocs from /tmp/smollm2-hf and
#            .dev/smollm2 (a later call in the same warm machine, carrying .dev)
#   smollm2-sweep  configs/sweep-smollm2{,-actorder}.ini with --backend cuda, QSHARD_SWEEP_JOBS (4)
#            points at a time (the evaluation runs on the CPU); the timed job alone; results.jsonl
#   smollm2-cpu    the 4-bit, act_order-off points with --backend cpu on 16 ranks (GPU vs CPU)
#   smollm2-precision  where the CPU/GPU gap comes from: the GPU job as shipped (activations in the
#            model's fp16, bf16 Hessian inputs) and with float32 activations (a copy of the model
#            whose config says float32); the CPU job with 1 and 4 OpenBLAS threads (the bits
#            change with the thread count: the CPU's own spread); all scored by one evaluator
#   smollm2-peer   GPTQModel (bench/peer_quality.py: its arithmetic pinned as on the CPU; wheels in
#            .whl/) on the same model, calibration and settings at QSHARD_PEER_POINTS, each point
#            scored by qshard-eval --backend cuda like the sweep's
#   smollm2-noise  bench/calibration_seed_noise.sh on the GPU (NOISE_DEVICE=cuda): qshard and
#            GPTQModel on the calibration sets QSHARD_NOISE_SEEDS (0 1 2 3) whose files were made
#            here into .dev/seeds (seed 0: the sweep's), at QSHARD_NOISE_POINTS (3:128:0); resumes
#            from /tmp/qshard-noise while the machine stays warm; results.jsonl to $OUT
set -uo pipefail
# The SmolLM2 staging calls carry no .dev (64 MiB per call): they run no GPU program.
# shellcheck source=/dev/null
[[ -f .dev/env.sh ]] && source .dev/env.sh
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
      /usr/bin/time -f "write: %e s, peak host %M KiB" "$bin/qshard-inspect" --write_synthetic llama2-7b \
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
    smollm2-stash)
      mkdir -p /tmp/qshard-smollm2 && cp .devm/* /tmp/qshard-smollm2/ && ls -la /tmp/qshard-smollm2 ;;
    smollm2-model)
      cp .devn/gguf.part* /tmp/qshard-smollm2/
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site-gguf .devn/gguf-*.whl
      cat /tmp/qshard-smollm2/gguf.part* > /tmp/qshard-smollm2/model.gguf
      sha256sum /tmp/qshard-smollm2/model.gguf
      PYTHONPATH=/tmp/site-gguf python3 .devn/gguf_to_hf.py /tmp/qshard-smollm2/model.gguf /tmp/smollm2-hf
      sha256sum /tmp/smollm2-hf/model.safetensors | tee "$out/smollm2_model.txt" ;;
    smollm2-install)
      mkdir -p models/SmolLM2-135M-Instruct data/smollm2-pydocs
      cp /tmp/smollm2-hf/model.safetensors models/SmolLM2-135M-Instruct/
      cp .dev/smollm2/*.json models/SmolLM2-135M-Instruct/
      cp .dev/smollm2/*.i32 data/smollm2-pydocs/ ;;
    smollm2-sweep)
      rm -rf out/sweep-smollm2 out/sweep-smollm2-actorder
      export OPENBLAS_NUM_THREADS=$((threads / ${QSHARD_SWEEP_JOBS:-4}))
      start=$(date +%s)
      for sweep in sweep-smollm2 sweep-smollm2-actorder; do
        n=$("$bin/qshard-sweep" --sweep "configs/$sweep.ini" --count)
        seq 0 $((n - 1)) | xargs -P "${QSHARD_SWEEP_JOBS:-4}" -I{} timeout 300 "$bin/qshard-sweep" \
          --sweep "configs/$sweep.ini" --index {} --eval_backend cuda -- --backend cuda --threads "$OPENBLAS_NUM_THREADS" \
          > "$out/$sweep.log" 2>&1
        grep -c perplexity "$out/$sweep.log"
        cp "out/$sweep/results.jsonl" "$out/$sweep.jsonl"
      done
      echo "sweep: $(($(date +%s) - start)) s for both grids"
      export OPENBLAS_NUM_THREADS=$threads
      quantize smollm2_w4g32_cuda --config configs/smollm2.ini --backend cuda --threads "$threads" --force --out /tmp/s-w4g32-cuda.h5 ;;
    smollm2-cpu)
      export OPENBLAS_NUM_THREADS=1
      for g in 32 64 128 -1; do
        /usr/bin/time -f "cpu g$g: %e s wall, 16 ranks" timeout 200 mpirun -np "$threads" --oversubscribe \
          "$bin/qshard-quantize" --config configs/smollm2.ini --backend cpu --group_size "$g" --quiet \
          --force --out "/tmp/s-cpu-g$g.h5"
      done 2>&1 | tee "$out/smollm2_cpu.log"
      export OPENBLAS_NUM_THREADS=4
      for g in 32 64 128 -1; do
        echo "g$g $("$bin/qshard-inspect" --checkpoint "/tmp/s-cpu-g$g.h5" --hash) $(timeout 200 "$bin/qshard-eval" \
          --checkpoint "/tmp/s-cpu-g$g.h5" --reference models/SmolLM2-135M-Instruct \
          --tokens data/smollm2-pydocs/eval_64x512.i32 --seq_len 512 --json)" &
      done > "$out/smollm2_cpu_eval.txt"; wait; cat "$out/smollm2_cpu_eval.txt" ;;
    smollm2-precision)
      m=models/SmolLM2-135M-Instruct
      rm -rf /tmp/smollm2-f32 && mkdir -p /tmp/smollm2-f32 && ln -s "$PWD/$m/model.safetensors" /tmp/smollm2-f32/
      sed 's/"torch_dtype": "float16"/"torch_dtype": "float32"/' "$m/config.json" > /tmp/smollm2-f32/config.json
      grep -c float32 /tmp/smollm2-f32/config.json
      export OPENBLAS_NUM_THREADS=$threads
      quantize smollm2_gpu_model --config configs/smollm2.ini --backend cuda --threads "$threads" --force --out /tmp/p-gpu-model.h5
      quantize smollm2_gpu_f32 --config configs/smollm2.ini --model /tmp/smollm2-f32 --backend cuda --threads "$threads" --force --out /tmp/p-gpu-f32.h5
      export OPENBLAS_NUM_THREADS=1
      /usr/bin/time -f "cpu t1: %e s wall, $threads ranks x 1 thread" timeout 250 mpirun -np "$threads" --oversubscribe \
        "$bin/qshard-quantize" --config configs/smollm2.ini --backend cpu --threads 1 --quiet --force --out /tmp/p-cpu-t1.h5 2>&1 | tail -3
      export OPENBLAS_NUM_THREADS=4
      /usr/bin/time -f "cpu t4: %e s wall, $((threads / 4)) ranks x 4 threads" timeout 250 mpirun -np $((threads / 4)) --oversubscribe \
        "$bin/qshard-quantize" --config configs/smollm2.ini --backend cpu --threads 4 --quiet --force --out /tmp/p-cpu-t4.h5 2>&1 | tail -3
      for c in gpu-model gpu-f32 cpu-t1 cpu-t4; do
        echo "$c $("$bin/qshard-inspect" --checkpoint "/tmp/p-$c.h5" --hash 2>&1 | tail -1) $(timeout 240 "$bin/qshard-eval" --backend cuda \
          --checkpoint "/tmp/p-$c.h5" --reference "$m" --tokens data/smollm2-pydocs/eval_64x512.i32 --seq_len 512 --json 2>&1 | tail -1)" &
      done > "$out/smollm2_precision.txt"; wait; cat "$out/smollm2_precision.txt" ;;
    smollm2-peer)
      [[ -d /tmp/site ]] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl
      # shellcheck disable=SC2086  # QSHARD_PEER_POINTS holds several points: split on purpose
      PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 timeout "${QSHARD_PEER_TIMEOUT:-400}" python3 bench/peer_quality.py \
        --model models/SmolLM2-135M-Instruct --calib data/smollm2-pydocs/calib_128x512.i32 --seq-len 512 \
        --out /tmp/peer-smollm2 ${QSHARD_PEER_POINTS:-4:32:0 4:64:0 4:-1:0 3:32:0 3:64:0 3:-1:0 2:64:0 4:128:0} \
        > "$out/smollm2_peer.log" 2>&1
      grep '^PEER' "$out/smollm2_peer.log"
      export OPENBLAS_NUM_THREADS=4
      for d in /tmp/peer-smollm2/w*; do
        echo "$(basename "$d") $(timeout 200 "$bin/qshard-eval" --backend cuda --model "$d" --reference models/SmolLM2-135M-Instruct \
          --tokens data/smollm2-pydocs/eval_64x512.i32 --seq_len 512 --json 2>&1 | tail -1)" &
        while (($(jobs -r | wc -l) >= 4)); do sleep 1; done
      done > "$out/smollm2_peer_eval.txt"; wait; cat "$out/smollm2_peer_eval.txt" ;;
    smollm2-noise)
      [[ -d /tmp/site ]] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl
      mkdir -p /tmp/qshard-noise && cp .dev/seeds/*.i32 /tmp/qshard-noise/
      # shellcheck disable=SC2086  # QSHARD_NOISE_POINTS holds several points: split on purpose
      PYTHONPATH=/tmp/site PYTHON=python3 QSHARD_BIN=$bin NOISE_DEVICE=cuda OPENBLAS_NUM_THREADS=4 \
        timeout "${QSHARD_NOISE_TIMEOUT:-540}" bash bench/calibration_seed_noise.sh /tmp/qshard-noise \
        "${QSHARD_NOISE_SEEDS:-0 1 2 3}" ${QSHARD_NOISE_POINTS:-3:128:0} > "$out/smollm2_noise.log" 2>&1
      echo "calibration_seed_noise.sh exit $?"
      cp /tmp/qshard-noise/results.jsonl "$out/smollm2_noise.jsonl"
      tail -5 "$out/smollm2_noise.log"; cut -c1-200 "$out/smollm2_noise.jsonl" ;;
  esac
done
