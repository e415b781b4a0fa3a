#!/usr/bin/env bash
# Here (no GPU): builds the CUDA build for sm_90 and copies what scripts/device-speed.sh needs into
# the git-ignored .dev/ (binaries, Boost.Program_options, env.sh, stories260k model and data).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${QSHARD_BUILD_DIR:-build-cuda}  # any build with the CUDA backend for sm_90
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null
targets=(qshard_gpu_tests qshard-quantize qshard-eval qshard-inspect qshard-sweep)
grep -q qshard-bench-gpu "$build/build.ninja" && targets+=(qshard-bench-gpu qshard-bench-layer-gpu)
cmake --build "$build" -j "${QSHARD_JOBS:-2}" --target "${targets[@]}"
mkdir -p .dev/bin .dev/lib
cp /usr/lib/x86_64-linux-gnu/libboost_program_options.so.1.74.0 .dev/lib/
cp ../shared/device/env.sh .dev/
cp -r ../shared/models ../shared/data .dev/
# GPTQModel beside qshard (device-speed.sh peer7/peer70): its script, and its wheels when built
# by ../shared/peer/build_peer_wheels.sh into .whl/ (carry .whl with .dev).
[[ -f ../shared/peer/peer_gptqmodel.py ]] && cp ../shared/peer/peer_gptqmodel.py .dev/
for b in tests/gpu/qshard_gpu_tests apps/qshard-quantize apps/qshard-eval apps/qshard-inspect apps/qshard-sweep bench/qshard-bench-gpu bench/qshard-bench-layer-gpu; do
  [[ -f $build/$b ]] && strip -o ".dev/bin/$(basename "$b")" "$build/$b"
done
# SmolLM2-135M (scripts/get-models.sh): its token files and small files travel here; its 98 MB
# GGUF is over one call's 64 MiB, so it travels in two halves in .devm/ (device-speed.sh
# smollm2-stash, then smollm2-sweep converts it there).
if [[ -f models/SmolLM2-135M-Instruct/config.json ]]; then
  mkdir -p .dev/smollm2 .devm
  cp models/SmolLM2-135M-Instruct/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json} \
    data/smollm2-pydocs/*.i32 scripts/gguf_to_hf.py .dev/smollm2/
fi
du -sh .dev
