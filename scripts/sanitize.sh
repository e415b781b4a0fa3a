#!/usr/bin/env bash
# The sanitizer build and the fuzzers (docs/RELIABILITY.md): clang with AddressSanitizer and
# UndefinedBehaviorSanitizer (every finding fatal), CPU backend only, in its own build directory.
# Builds the unit tests and the libFuzzer targets of tests/fuzz, runs `ctest -L unit` there, then
# each fuzzer for a bounded time from its checked-in corpus (tests/fuzz/corpus/<target>) with a
# fixed seed. A sanitizer report, crash, leak, timeout or out-of-memory fails the script; the
# input that caused it is kept in BUILD/fuzz-artifacts/. scripts/test.sh runs this script.
#
#   bash scripts/sanitize.sh
#   QSHARD_FUZZ_SECONDS=300 bash scripts/sanitize.sh     # seconds per fuzzer (default 60; 0: none)
#   QSHARD_SANITIZE_BUILD_DIR=out bash scripts/sanitize.sh  # default build-sanitize
#   QSHARD_FUZZ_CORPUS_ONLY=""  # mutate every target (default: checkpoint runs its corpus only:
#                               # mutated HDF5 files crash libhdf5 1.10.8 itself within seconds)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build_dir=${QSHARD_SANITIZE_BUILD_DIR:-build-sanitize}
seconds=${QSHARD_FUZZ_SECONDS:-60}
corpus_only=" ${QSHARD_FUZZ_CORPUS_ONLY-checkpoint} "
jobs=${QSHARD_JOBS:-$(nproc)}

start=$SECONDS
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DQSHARD_CUDA=OFF -DQSHARD_SANITIZE=ON -DQSHARD_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 >/dev/null
cmake --build "$build_dir" -j "$jobs" --target qshard_unit_tests qshard_fuzzers
echo "sanitize: built in $((SECONDS - start)) s"

# Leak reports from third-party libraries only (tests/fuzz/lsan.supp says which and why).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

start=$SECONDS
ctest --test-dir "$build_dir" -L unit --output-on-failure -j "${QSHARD_TEST_JOBS:-2}" --timeout 900
echo "sanitize: unit tests in $((SECONDS - start)) s"

((seconds > 0)) || exit 0
artifacts=$root/$build_dir/fuzz-artifacts
mkdir -p "$artifacts"
for corpus in tests/fuzz/corpus/*/; do
  target=$(basename "$corpus")
  work=$(mktemp -d)  # new inputs go here, never into the checked-in corpus
  log=$root/$build_dir/fuzz-$target.log
  status=0
  budget=(-max_total_time="$seconds")
  [[ $corpus_only == *" $target "* ]] && budget=(-runs=0)
  "$build_dir/tests/fuzz/qshard_fuzz_$target" -seed=1 "${budget[@]}" -timeout=120 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$target-" \
    "$work" "$corpus" >"$log" 2>&1 || status=$?
  rm -rf "$work"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if ((status != 0)); then
    tail -n 60 "$log"
    echo "sanitize: fuzzer $target FAILED (exit $status); log $log, input in $artifacts/" >&2
    exit 1
  fi
  echo "sanitize: fuzzer $target (${budget[*]}): ${runs:-?} executions, no findings"
done
