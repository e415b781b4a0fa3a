#!/usr/bin/env bash
# Here (no GPU): builds the CUDA build for sm_90 and copies what scripts/device-speed.sh needs into
# the git-ignored .dev/ (binaries, Boost.Program_options, env.sh, stories260k model and data).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${QSHARD_BUILD_DIR:-build-cuda}  # any build with the CUDA backend for sm_90
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null
cmake --build "$build" -j "${QSHARD_JOBS:-2}" --target qshard_gpu_tests qshard-quantize qshard-eval qshard-inspect \
    $(grep -q qshard-bench-gpu "$build/build.ninja" && echo qshard-bench-gpu qshard-bench-layer-gpu)
mkdir -p .dev/bin .dev/lib
cp /usr/lib/x86_64-linux-gnu/libboost_program_options.so.1.74.0 .dev/lib/
cp ../shared/device/env.sh .dev/
cp -r ../shared/models ../shared/data .dev/
# GPTQModel beside qshard (device-speed.sh peer7/peer70): its script, and its wheels when built
# by ../shared/peer/build_peer_wheels.sh into .whl/ (carry .whl with .dev).
[[ -f ../shared/peer/peer_gptqmodel.py ]] && cp ../shared/peer/peer_gptqmodel.py .dev/
for b in tests/gpu/qshard_gpu_tests apps/qshard-quantize apps/qshard-eval apps/qshard-inspect bench/qshard-bench-gpu bench/qshard-bench-layer-gpu; do
  [[ -f $build/$b ]] && strip -o ".dev/bin/$(basename "$b")" "$build/$b"
done
du -sh .dev
