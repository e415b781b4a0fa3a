#!/usr/bin/env bash
# Layer groups on the GPU machine (issue 19), from the checkout root after scripts/device-pack.sh:
#   bash bench/layer_groups_gpu.sh [tests] [tiny] [r1g1 r2g1 r2g2 r4g1 r4g2 r4g4]
# Ranks share the H200 (--collectives mpi): the GPU tests, tiny bitwise checks (whole-file and
# per-layer hashes), and the whole synthetic Llama-2-7B per configuration rRgG (R ranks, G groups),
# each with its wall time, peak GPU memory, boundary lines and per-layer times in $OUT/summary.txt.
set -u
# shellcheck source=/dev/null
source .dev/env.sh
bin=.dev/bin
out=${OUT:-/tmp}
summary="$out/summary.txt"
export OPENBLAS_NUM_THREADS=1
steps=" ${*:-tests tiny} "

if [[ $steps == *" tests "* ]]; then
  QSHARD_SHARED_DIR=.dev timeout 300 "$bin/qshard_gpu_tests" --gtest_filter="${GTEST_FILTER_SET:-*}" \
    > "$out/gpu_tests.log" 2>&1
  echo "gpu tests rc=$?" >> "$summary"
  grep -E "^\[  (PASSED|FAILED|SKIPPED)|FAILED  \]" "$out/gpu_tests.log" >> "$summary"
fi

if [[ $steps == *" tiny "* ]]; then
  for cfg in "1 1" "2 2" "4 2" "4 4"; do
    read -r ranks groups <<< "$cfg"
    file="/tmp/tiny-r$ranks-g$groups.h5"
    mpirun -np "$ranks" --oversubscribe --bind-to none "$bin/qshard-quantize" --model synthetic:tiny \
      --samples 16 --seq_len 64 --batch_samples 2 --bits 4 --group_size 32 --backend cuda \
      --collectives mpi --layer_groups "$groups" --quiet --force --out "$file" > "$out/tiny.log" 2>&1 \
      || { echo "tiny r$ranks g$groups failed"; tail -5 "$out/tiny.log"; } >> "$summary"
    echo "tiny cuda ranks $ranks groups $groups hash $("$bin/qshard-inspect" --checkpoint "$file" --hash)" >> "$summary"
    for l in 0 1 2 3; do
      echo "  layer $l $("$bin/h5dump" -a "/layers/0000$l/q_proj/content_hash" \
        -a "/layers/0000$l/down_proj/content_hash" "$file" | grep '(0):' | tr -s ' ' | tr '\n' ' ')" >> "$summary"
    done
  done
fi

# The whole synthetic Llama-2-7B on `ranks` ranks in `groups` groups.
whole() {
  local name=$1 ranks=$2 groups=$3
  local start=$SECONDS
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "/tmp/$name.mem" &
  local sampler=$!
  timeout "${LIMIT:-200}" mpirun -np "$ranks" --oversubscribe --bind-to none "$bin/qshard-quantize" \
    --model synthetic:llama2-7b --samples "${SAMPLES:-128}" --seq_len 2048 --bits 4 --group_size 128 \
    --backend cuda --collectives mpi --layer_groups "$groups" --threads 4 --force \
    --out "/tmp/$name.h5" > "$out/$name.log" 2>&1
  local rc=$?
  kill "$sampler"
  {
    echo "$name ranks $ranks groups $groups rc=$rc wall $((SECONDS - start)) s," \
      "peak GPU memory $(sort -n "/tmp/$name.mem" | tail -1) MiB"
    grep -E "^group|^wrote|error" "$out/$name.log" | head -8
    grep -E "^layer" "$out/$name.log" | awk '{print $2, $4}' | tr '\n' ' '
    echo
  } >> "$summary"
  rm -rf "/tmp/$name.h5" "/tmp/$name.h5.parts"
}

for step in $steps; do
  if [[ $step =~ ^r([0-9]+)g([0-9]+)$ ]]; then
    whole "l7b-$step" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  fi
done
cat "$summary"
