#!/usr/bin/env bash
# Installs what building qshard and running its main job need, from Debian packages (idempotent:
# fast when all is present), and builds the project into build/ (the CUDA backend too when nvcc is
# found). What only the tests need (clang/llvm for the sanitizers, shellcheck, python3-doc, the
# Python interop venv) is installed by scripts/test.sh.
#
#   bash scripts/setup.sh            # install + configure + build
#   QSHARD_BUILD_DIR=build-cpu bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(
  build-essential cmake ninja-build git pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libboost-program-options-dev
  libopenblas-dev liblapacke-dev
  nlohmann-json3-dev
  libgtest-dev  # the default build builds the tests too (QSHARD_BUILD_TESTS)
  gnuplot-nox   # qshard-sweep --report draws its plot with gnuplot
)
bash scripts/install-debian-packages.sh setup "${packages[@]}"

build_dir=${QSHARD_BUILD_DIR:-build}
jobs=${QSHARD_JOBS:-$(nproc)}
# shellcheck disable=SC2086  # QSHARD_CMAKE_ARGS holds several arguments: split on purpose
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${QSHARD_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$jobs"
echo "setup: built into $build_dir"
