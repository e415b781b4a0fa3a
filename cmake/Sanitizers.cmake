# Sanitizer and fuzzing builds (scripts/sanitize.sh; docs/RELIABILITY.md).
#   QSHARD_SANITIZE=ON  AddressSanitizer + UndefinedBehaviorSanitizer on everything built; any
#                       finding aborts the process (-fno-sanitize-recover=all).
#   QSHARD_FUZZ=ON      libFuzzer targets in tests/fuzz (clang only); the libraries they parse
#                       with get coverage instrumentation there (tests/fuzz/CMakeLists.txt).
option(QSHARD_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(QSHARD_FUZZ "Build the libFuzzer targets of tests/fuzz (clang only)" OFF)

if(QSHARD_FUZZ AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "QSHARD_FUZZ=ON needs clang (libFuzzer), not ${CMAKE_CXX_COMPILER_ID}: "
                      "configure with -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang")
endif()

if(QSHARD_SANITIZE)
  set(_qshard_sanitizers -fsanitize=address,undefined -fno-sanitize-recover=all)
  add_compile_options(
    "$<$<COMPILE_LANGUAGE:CXX,C>:${_qshard_sanitizers};-fno-omit-frame-pointer;-gline-tables-only>")
  add_link_options(${_qshard_sanitizers})
endif()

message(STATUS "qshard sanitizers: ${QSHARD_SANITIZE}, fuzzers: ${QSHARD_FUZZ}")
