#pragma once
// Memory-mapped safetensors files and sharded Hugging Face checkpoints.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qshard/core/tensor.hpp"

namespace qshard {

// One .safetensors file, memory-mapped read-only for its lifetime. Every structural problem of
// the file (header length, JSON, dtype, offsets, overlaps, sizes) is a qshard::Error naming the
// file and the tensor.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;

  const std::filesystem::path& path() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  TensorView view(const std::string& name) const;  // throws naming the file if absent
  const std::map<std::string, std::string>& metadata() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A Hugging Face model directory: model.safetensors, or shards listed by
// model.safetensors.index.json (weight_map). Shards are opened lazily and memory-mapped.
class SafetensorsModel {
 public:
  explicit SafetensorsModel(const std::filesystem::path& directory);
  ~SafetensorsModel();
  SafetensorsModel(SafetensorsModel&&) noexcept;
  SafetensorsModel& operator=(SafetensorsModel&&) noexcept;

  const std::filesystem::path& directory() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  TensorView view(const std::string& name) const;
  std::filesystem::path file_of(const std::string& name) const;
  // Opens every shard now and cross-checks it against the index (a listed tensor missing from
  // its shard, a tensor in two shards, a tensor no index entry lists): the checks that otherwise
  // run when a shard is first used.
  void check_all() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct NamedTensor {
  std::string name;
  const Tensor* tensor;
};
// Writes a safetensors file (tensors laid out in the given order, 8-byte aligned header),
// under a temporary name renamed into place when complete.
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace qshard
