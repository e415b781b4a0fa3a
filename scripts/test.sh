#!/usr/bin/env bash
# Fetches SmolLM2-135M and its text (scripts/get-models.sh), runs the whole test suite (unit, mpi,
# integration, python; gpu tests skip without a GPU) with CTest, then
# (with no arguments, unless QSHARD_SANITIZE=0) scripts/sanitize.sh: the unit tests built with
# AddressSanitizer + UndefinedBehaviorSanitizer and the fuzzers, QSHARD_FUZZ_SECONDS (60) each.
# Arguments go to CTest (e.g. -L unit) and run only that selection.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${QSHARD_BUILD_DIR:-build}
# The real model and text of the SmolLM2 tests (idempotent; QSHARD_GET_MODELS=0 skips it and
# those tests skip with a message).
if [[ ${QSHARD_GET_MODELS:-1} != 0 ]]; then
  bash scripts/get-models.sh
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One BLAS thread per process: MPI tests oversubscribe the cores.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
ctest --test-dir "$build_dir" --output-on-failure -j "${QSHARD_TEST_JOBS:-2}" --timeout 900 "$@"
if (($# == 0)) && [[ ${QSHARD_SANITIZE:-1} != 0 ]]; then
  bash scripts/sanitize.sh
fi
