#!/usr/bin/env bash
# Runs the whole test suite (unit, mpi, integration; gpu tests skip without a GPU) with CTest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${QSHARD_BUILD_DIR:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One BLAS thread per process: MPI tests oversubscribe the cores.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
ctest --test-dir "$build_dir" --output-on-failure -j "${QSHARD_TEST_JOBS:-2}" --timeout 900 "$@"
