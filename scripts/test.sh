#!/usr/bin/env bash
# Installs what only the tests need (idempotent: fast when present): the Debian packages below and
# the Python interop venv (scripts/setup-python.sh), fetches SmolLM2-135M and its text
# (scripts/get-models.sh), runs the whole test suite (unit, mpi, integration, sweep, readme,
# cluster, python; gpu tests skip without a GPU) with CTest, then (with no arguments, unless
# QSHARD_SANITIZE=0) scripts/sanitize.sh: the unit tests built with AddressSanitizer +
# UndefinedBehaviorSanitizer and the fuzzers, QSHARD_FUZZ_SECONDS (60) each.
# Arguments go to CTest (e.g. -L unit) and run only that selection. Run scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${QSHARD_BUILD_DIR:-build}
test_packages=(
  python3 python3-venv           # the interop venv, the README test
  python3-doc                    # real English text for the SmolLM2 tests (scripts/get-models.sh)
  shellcheck                     # the sbatch scripts' test
  munge slurmctld slurmd slurm-client  # a real one-node Slurm cluster (scripts/slurm-local.sh)
  iproute2                       # network-namespace hosts for multi-host MPI (scripts/netns-hosts.sh)
  clang libclang-rt-14-dev llvm  # scripts/sanitize.sh: ASan/UBSan, libFuzzer, llvm-symbolizer
)
bash scripts/install-debian-packages.sh test "${test_packages[@]}"
# The Python tools of the interoperability tests and of get-models.sh (~3 GB when new;
# QSHARD_SETUP_PYTHON=0 skips it and those tests skip with a message).
if [[ ${QSHARD_SETUP_PYTHON:-1} != 0 ]]; then
  bash scripts/setup-python.sh
fi
# The real model and text of the SmolLM2 tests (idempotent; QSHARD_GET_MODELS=0 skips it and
# those tests skip with a message).
if [[ ${QSHARD_GET_MODELS:-1} != 0 && ${QSHARD_SETUP_PYTHON:-1} != 0 ]]; then
  bash scripts/get-models.sh
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One BLAS thread per process: MPI tests oversubscribe the cores.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# 1200 s a test: the longest, SmolLM2.GptqBeatsRtnIdenticallyOn1And2Ranks, takes ~6 min alone and
# took 768 s beside the others on a 2-core CI machine.
ctest --test-dir "$build_dir" --output-on-failure -j "${QSHARD_TEST_JOBS:-2}" --timeout 1200 "$@"
if (($# == 0)) && [[ ${QSHARD_SANITIZE:-1} != 0 ]]; then
  bash scripts/sanitize.sh
fi
