#pragma once
// What the libFuzzer targets share: the input as a file of its own (for readers that take a
// path) and the one outcome a malformed input may have besides success, a qshard::Error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "qshard/core/error.hpp"

namespace qshard::fuzz {

// The input's bytes as a file (in TMPDIR, named after the process), removed when done.
class InputFile {
 public:
  InputFile(const std::uint8_t* data, const std::size_t size, const std::string& suffix)
      : path_(std::filesystem::temp_directory_path() /
              ("qshard-fuzz-" + std::to_string(::getpid()) + suffix)) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    if (!out) {
      std::fprintf(stderr, "fuzz: cannot write %s\n", path_.c_str());
      std::abort();
    }
  }
  ~InputFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs `parse`; a qshard::Error (a refused input) is an expected outcome, anything else escapes
// and is reported by libFuzzer as a crash. QSHARD_FUZZ_VERBOSE=1 prints each refusal (to see
// why a seed is refused: `qshard_fuzz_X -runs=0 corpus/X`).
template <typename Parse>
void refused_or_parsed(Parse&& parse) {
  static const bool verbose = std::getenv("QSHARD_FUZZ_VERBOSE") != nullptr;
  try {
    parse();
  } catch (const Error& e) {
    if (verbose) std::fprintf(stderr, "fuzz: refused: %s\n", e.what());
  }
}

// Stops the fuzzer when a property of a parsed input does not hold.
inline void check(const bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace qshard::fuzz
