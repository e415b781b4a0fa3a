#pragma once
// Safetensors shards of a Hugging Face model directory, written as tensors arrive so that at most
// one shard's tensors are held in memory.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qshard/core/tensor.hpp"

namespace qshard {

// Parses a shard size as Hugging Face spells it: "2GB" (10^9), "500MB", "64KB", "2GiB" (2^30),
// "512MiB", "1024" (bytes). Throws naming the text.
std::uint64_t parse_byte_size(std::string_view text);

class ShardWriter {
 public:
  // Shards of at most `max_shard_bytes` tensor bytes (a larger tensor gets a shard of its own),
  // with metadata {"format": "pt"}.
  ShardWriter(std::filesystem::path directory, std::uint64_t max_shard_bytes);

  // Adds a tensor; the shard being filled is written first when `tensor` would overflow it.
  void add(std::string name, Tensor tensor);
  // Writes the last shard and gives the shards their final names, as Hugging Face does: one shard
  // is model.safetensors; several are model-0000N-of-0000M.safetensors listed by
  // model.safetensors.index.json (metadata.total_size and weight_map).
  void finish();

  std::int64_t shard_count() const { return static_cast<std::int64_t>(shards_.size()); }
  std::int64_t tensor_count() const { return tensors_; }
  std::uint64_t total_bytes() const { return total_bytes_; }

 private:
  void write_pending();
  std::filesystem::path part_path(std::size_t shard) const;

  std::filesystem::path directory_;
  std::uint64_t max_shard_bytes_;
  std::vector<std::pair<std::string, Tensor>> pending_;
  std::uint64_t pending_bytes_ = 0;
  std::vector<std::vector<std::string>> shards_;  // tensor names of every written shard
  std::int64_t tensors_ = 0;
  std::uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

}  // namespace qshard
