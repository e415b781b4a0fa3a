#!/usr/bin/env bash
# qshard and GPTQModel on the same calibration sets drawn with several seeds: the run-to-run noise
# of GPTQ on SmolLM2, paired by calibration set (docs/QUALITY.md, "Side by side with GPTQModel").
#
#   bash bench/calibration_seed_noise.sh OUT "1 2 3" 3:128:0 3:64:1 ...
#
# For each seed, scripts/make_tokens.py draws 128 windows of 512 tokens of the library reference
# (seed 0 is data/smollm2-pydocs/calib_128x512.i32, the sweep's set). For each point BITS:GROUP:ACT
# both tools quantize on that set (qshard: 2 CPU ranks, configs/smollm2.ini; GPTQModel:
# bench/peer_quality.py, gptq_v2) one after the other, and qshard-eval scores both checkpoints on
# the evaluation set. Each result is a JSON line appended to OUT/results.jsonl with the tool, seed,
# point and wall time. Points already in the file are skipped, so the script resumes.
# Needs the build (build/apps), the interop venv (.venv-interop) and scripts/get-models.sh's data.
#
# NOISE_DEVICE=cuda runs both on the GPU instead (qshard-quantize --backend cuda on one process,
# GPTQModel with --device cuda:0 and its arithmetic pinned as on the CPU, qshard-eval --backend
# cuda); QSHARD_BIN (build/apps) and PYTHON (.venv-interop/bin/python) say where the programs are
# (scripts/device-speed.sh smollm2-noise, with the calibration files made here beforehand).
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n 2,13p "$0"; exit 2; }
out=$1
seeds=$2
shift 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
python=${PYTHON:-.venv-interop/bin/python}
bin=${QSHARD_BIN:-build/apps}
device=${NOISE_DEVICE:-cpu}
case $device in
  cpu) quantize=(mpirun -np 2 --oversubscribe "$bin/qshard-quantize" --backend cpu)
       peer_device=cpu eval_backend=cpu ;;
  cuda) quantize=("$bin/qshard-quantize" --backend cuda)
        peer_device=cuda:0 eval_backend=cuda ;;
  *) echo "NOISE_DEVICE must be cpu or cuda, not $device" >&2; exit 2 ;;
esac
model=models/SmolLM2-135M-Instruct
library=/usr/share/doc/python3/html/_sources/library
mkdir -p "$out"
results=$out/results.jsonl
touch "$results"

evaluate() {  # tool seed point wall source...
  local tool=$1 seed=$2 point=$3 wall=$4
  shift 4
  local line
  line=$("$bin/qshard-eval" --backend "$eval_backend" "$@" --reference "$model" --tokens data/smollm2-pydocs/eval_64x512.i32 \
    --seq_len 512 --json | tail -n 1)
  printf '{"tool":"%s","device":"%s","seed":%s,"point":"%s","wall_s":%s,"eval":%s}\n' \
    "$tool" "$device" "$seed" "$point" "$wall" "$line" >>"$results"
}

done_already() { grep -q "\"tool\":\"$1\",.*\"seed\":$2,\"point\":\"$3\"" "$results"; }

for seed in $seeds; do
  calib=data/smollm2-pydocs/calib_128x512.i32
  if [[ $seed != 0 ]]; then
    calib=$out/calib_128x512_seed$seed.i32
    [[ -f $calib ]] || "$python" scripts/make_tokens.py --tokenizer "$model" --rows 128 \
      --seq-len 512 --seed "$seed" --source "library reference, seed $seed" --out "$calib" "$library"
  fi
  for point in "$@"; do
    IFS=: read -r bits group act <<<"$point"
    name=w$bits-g$group-a$act-s$seed
    if ! done_already qshard "$seed" "$point"; then
      act_flag=()
      [[ $act == 1 ]] && act_flag=(--act_order)
      start=$EPOCHREALTIME
      "${quantize[@]}" --config configs/smollm2.ini \
        --calib "$calib" --bits "$bits" --group_size "$group" "${act_flag[@]}" \
        --quiet --force --out "$out/$name.h5"
      wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
      evaluate qshard "$seed" "$point" "$wall" --checkpoint "$out/$name.h5"
    fi
    if ! done_already gptqmodel "$seed" "$point"; then
      start=$EPOCHREALTIME
      "$python" bench/peer_quality.py --model "$model" --calib "$calib" --seq-len 512 \
        --device "$peer_device" --out "$out/gptqmodel-s$seed" "$point" >"$out/$name-gptqmodel.log" 2>&1
      wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
      evaluate gptqmodel "$seed" "$point" "$wall" --model "$out/gptqmodel-s$seed/w$bits-g$group-a$act"
    fi
  done
done
