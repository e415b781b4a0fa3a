#!/usr/bin/env bash
# Installs every dependency of qshard from Debian packages (idempotent: fast when all is present)
# and builds the project into build/ (the CUDA backend too when nvcc is found).
#
#   bash scripts/setup.sh            # install + configure + build
#   QSHARD_BUILD_DIR=out bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(
  build-essential cmake ninja-build git pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libboost-program-options-dev
  libopenblas-dev liblapacke-dev
  nlohmann-json3-dev
  libgtest-dev
  python3 python3-venv
  python3-doc  # real English text for the SmolLM2 tables (scripts/get-models.sh)
  shellcheck gnuplot-nox
  clang libclang-rt-14-dev llvm  # scripts/sanitize.sh: ASan/UBSan, libFuzzer, llvm-symbolizer
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# Python tools for the interoperability tests (never used by the main job).
if [[ -f scripts/python-requirements.txt ]]; then
  bash scripts/setup-python.sh
fi

build_dir=${QSHARD_BUILD_DIR:-build}
jobs=${QSHARD_JOBS:-$(nproc)}
# shellcheck disable=SC2086  # QSHARD_CMAKE_ARGS holds several arguments: split on purpose
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${QSHARD_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$jobs"
echo "setup: built into $build_dir"
