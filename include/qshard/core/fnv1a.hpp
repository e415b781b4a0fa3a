#pragma once
// FNV-1a, 64 bits: the one byte hash of fingerprints (tokens, input files) and of the checkpoint's
// content hashes (io/checkpoint_hash.hpp). Not cryptographic.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace qshard {

class Fnv1a {
 public:
  void add(std::span<const std::byte> bytes) {
    for (const std::byte b : bytes) hash_ = (hash_ ^ std::to_integer<std::uint64_t>(b)) * kPrime;
  }
  std::uint64_t value() const { return hash_; }

 private:
  static constexpr std::uint64_t kOffsetBasis = 0xcbf29ce484222325ull;
  static constexpr std::uint64_t kPrime = 0x100000001b3ull;
  std::uint64_t hash_ = kOffsetBasis;
};

// A 64-bit hash as it is recorded and printed: 16 lowercase hex digits.
inline std::string hex64(std::uint64_t value) {
  char digits[17];
  std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(value));
  return digits;
}

}  // namespace qshard
