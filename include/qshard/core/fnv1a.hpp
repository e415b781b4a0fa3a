#pragma once
// FNV-1a, 64 bits: the one byte hash of fingerprints (tokens, input files) and of the checkpoint's
// content hashes (io/checkpoint_hash.hpp). Not cryptographic.
#include <cstddef>
#include <cstdint>
#include <span>

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

}  // namespace qshard
