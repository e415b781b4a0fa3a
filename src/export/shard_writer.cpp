// ShardWriter: shards written as they fill, renamed and indexed at the end.
#include "qshard/export/shard_writer.hpp"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "qshard/core/error.hpp"
#include "qshard/io/safetensors.hpp"

namespace qshard {
namespace {

std::string shard_name(std::size_t index, std::size_t count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

void rename_or_throw(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  require(!ec, "cannot rename ", from, " to ", to, ": ", ec.message());
}

}  // namespace

std::uint64_t parse_byte_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit;
  for (const char c : text.substr(digits))
    unit += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, std::uint64_t> kUnits = {{"", 1},
                                                              {"B", 1},
                                                              {"KB", 1000},
                                                              {"MB", 1000 * 1000},
                                                              {"GB", 1000000000},
                                                              {"KIB", 1ull << 10},
                                                              {"MIB", 1ull << 20},
                                                              {"GIB", 1ull << 30}};
  const auto unit_it = kUnits.find(unit);
  require(digits > 0 && digits <= 12 && unit_it != kUnits.end(), "invalid size '", text,
          "' (expected e.g. 2GB, 500MB, 2GiB or a number of bytes)");
  const std::uint64_t value = std::stoull(std::string(text.substr(0, digits))) * unit_it->second;
  require(value > 0, "invalid size '", text, "': must be positive");
  return value;
}

ShardWriter::ShardWriter(std::filesystem::path directory, std::uint64_t max_shard_bytes)
    : directory_(std::move(directory)), max_shard_bytes_(max_shard_bytes) {
  require(max_shard_bytes_ > 0, "shard size must be positive");
}

std::filesystem::path ShardWriter::part_path(std::size_t shard) const {
  return directory_ / str("shard-", shard, ".safetensors.part");
}

void ShardWriter::add(std::string name, Tensor tensor) {
  require(!finished_, "ShardWriter: add after finish");
  const std::uint64_t bytes = tensor.bytes().size();
  if (!pending_.empty() && pending_bytes_ + bytes > max_shard_bytes_) write_pending();
  pending_bytes_ += bytes;
  total_bytes_ += bytes;
  ++tensors_;
  pending_.emplace_back(std::move(name), std::move(tensor));
}

void ShardWriter::write_pending() {
  std::vector<NamedTensor> named;
  std::vector<std::string> names;
  for (const auto& [name, tensor] : pending_) {
    named.push_back({name, &tensor});
    names.push_back(name);
  }
  write_safetensors(part_path(shards_.size()), named, {{"format", "pt"}});
  shards_.push_back(std::move(names));
  pending_.clear();
  pending_bytes_ = 0;
}

void ShardWriter::finish() {
  require(!finished_, "ShardWriter: finish called twice");
  if (!pending_.empty() || shards_.empty()) write_pending();
  finished_ = true;
  if (shards_.size() == 1) {
    rename_or_throw(part_path(0), directory_ / "model.safetensors");
    return;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    const std::string file = shard_name(i, shards_.size());
    rename_or_throw(part_path(i), directory_ / file);
    for (const std::string& name : shards_[i]) weight_map[name] = file;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes_}}},
                                {"weight_map", weight_map}};
  const std::filesystem::path path = directory_ / "model.safetensors.index.json";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << index.dump(2) << '\n';
  out.close();
  require(out.good(), "cannot write ", path);
}

}  // namespace qshard
