#!/usr/bin/env bash
# --layer_groups: what starting each block from floating-point inputs costs. For each model and
# setting, G = 1 (the sequential job) and larger G, one rank per group, CPU backend; each
# checkpoint evaluated by qshard-eval against the unquantized model (perplexity, KL, top-1), with
# the job's wall time. Prints one table row per run (markdown) on stdout.
#   bench/layer_groups_quality.sh stories260k|smollm2 [OUT_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
which=${1:?stories260k or smollm2}
out=${2:-out/layer-groups}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
case $which in
  stories260k)
    model=../shared/models/stories260k
    calib="--calib ../shared/data/stories260k/calib_128x256.i32 --samples 128 --seq_len 256"
    eval_args="--tokens ../shared/data/stories260k/eval_256x256.i32 --seq_len 256"
    groups="1 2 4 5" ;;  # 5 = every layer from floating-point inputs
  smollm2)
    model=models/SmolLM2-135M-Instruct
    calib="--calib data/smollm2-pydocs/calib_128x512.i32 --samples 32 --seq_len 512"
    eval_args="--tokens data/smollm2-pydocs/eval_64x512.i32 --seq_len 512 --max_rows 32 --threads 2"
    groups="1 2 4" ;;
  *) echo "unknown model $which" >&2; exit 2 ;;
esac
echo "| model | bits | group | G | perplexity | KL | top-1 | job wall s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for setting in "4 32" "3 64"; do
  read -r bits group <<< "$setting"
  # shellcheck disable=SC2086  # eval_args holds several arguments
  json=$(build/apps/qshard-eval --model "$model" --rtn_bits "$bits" --rtn_group_size "$group" $eval_args --json)
  row=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("%.3f | %.4f | %.1f %%" % (j["perplexity"], j["kl"], 100*j["top1"]))' "$json")
  printf '| %s (RTN) | %s | %s | — | %s | — |\n' "$which" "$bits" "$group" "$row"
  for g in $groups; do
    name="$out/$which-w${bits}g${group}-G$g"
    rm -rf "$name.h5.parts"  # a run killed earlier
    start=$(date +%s.%N)
    # shellcheck disable=SC2086  # calib holds several arguments
    mpirun -np "$g" --oversubscribe build/apps/qshard-quantize --model "$model" $calib \
      --bits "$bits" --group_size "$group" --backend cpu --layer_groups "$g" --quiet --force \
      --out "$name.h5" > "$name.log" 2>&1
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    # shellcheck disable=SC2086  # eval_args holds several arguments
    json=$(build/apps/qshard-eval --model "$model" --checkpoint "$name.h5" $eval_args --json)
    row=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("%.3f | %.4f | %.1f %%" % (j["perplexity"], j["kl"], 100*j["top1"]))' "$json")
    printf '| %s | %s | %s | %s | %s | %.1f |\n' "$which" "$bits" "$group" "$g" "$row" "$wall"
  done
done
