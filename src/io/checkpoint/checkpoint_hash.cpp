// The checkpoint's content hashes (include/qshard/io/checkpoint_hash.hpp): the one definition of
// the module and file hashes, the stored form, and the hash recomputed from a file's data.
#include "qshard/io/checkpoint_hash.hpp"

#include <bit>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "qshard/core/error.hpp"
#include "qshard/core/fnv1a.hpp"
#include "qshard/io/checkpoint.hpp"

namespace qshard {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the content hashes are defined over little-endian bytes");

// FNV-1a over named fields: integers as 8 little-endian bytes, text with its NUL, tensors by
// name, rank, extents and bytes.
class FieldHash {
 public:
  void add_int(std::int64_t value) { hash_.add(std::as_bytes(std::span(&value, 1))); }
  void add_text(std::string_view text) {
    hash_.add(std::as_bytes(std::span(text.data(), text.size())));
    add_nul();
  }
  void add_int(std::string_view name, std::int64_t value) {
    add_text(name);
    add_int(value);
  }
  void add_text(std::string_view name, std::string_view value) {
    add_text(name);
    add_text(value);
  }
  template <typename T>
  void add_tensor(std::string_view name, std::span<const T> values,
                  std::initializer_list<std::int64_t> shape) {
    add_text(name);
    add_int(static_cast<std::int64_t>(shape.size()));
    for (const std::int64_t extent : shape) add_int(extent);
    hash_.add(std::as_bytes(values));
  }
  template <typename T>
  void add_matrix(std::string_view name, const Matrix<T>& m) {
    add_tensor<T>(name, std::span(m.data(), m.size()), {m.rows(), m.cols()});
  }
  std::uint64_t value() const { return hash_.value(); }

 private:
  void add_nul() {
    const std::byte nul{0};
    hash_.add(std::span(&nul, 1));
  }
  Fnv1a hash_;
};

}  // namespace

std::uint64_t module_hash(const StoredModule& m) {
  FieldHash hash;
  hash.add_text("method", m.method);
  if (m.method != "none") {
    require(m.qweight != nullptr && m.qzeros != nullptr && m.scales != nullptr,
            "module_hash: a quantized module needs qweight, qzeros and scales");
    hash.add_int("bits", m.bits);
    hash.add_int("group_size", m.group_size);
    hash.add_int("in_features", m.in_features);
    hash.add_int("out_features", m.out_features);
    hash.add_matrix("qweight", *m.qweight);
    hash.add_matrix("qzeros", *m.qzeros);
    hash.add_matrix("scales", *m.scales);
    hash.add_tensor("g_idx", m.g_idx, {static_cast<std::int64_t>(m.g_idx.size())});
  }
  if (m.weight != nullptr) hash.add_matrix("weight", *m.weight);
  if (!m.bias.empty())
    hash.add_tensor("bias", m.bias, {1, static_cast<std::int64_t>(m.bias.size())});
  return hash.value();
}

std::uint64_t file_hash(std::int64_t layers, std::string_view model_config,
                        std::span<const std::uint64_t> module_hashes) {
  FieldHash hash;
  hash.add_int("layers", layers);
  hash.add_text("model_config", model_config);
  for (const std::uint64_t module : module_hashes) hash.add_int(static_cast<std::int64_t>(module));
  return hash.value();
}

std::uint64_t file_hash(const h5::Group& root, std::span<const std::uint64_t> module_hashes) {
  const std::string model_config =
      root.has_attr("model_config") ? root.attr_string("model_config") : std::string();
  return file_hash(root.attr_int("layers"), model_config, module_hashes);
}

std::uint64_t stored_hash(const h5::Group& group) {
  const std::string where = str(group.file(), ": ", group.path());
  require(group.has_attr(kContentHashAttr), where, " has no @", kContentHashAttr);
  const std::string text = group.attr_string(kContentHashAttr);
  require(text.size() == 16 && text.find_first_not_of("0123456789abcdef") == std::string::npos,
          where, ": @", kContentHashAttr, " = \"", text, "\" is not 16 hex digits");
  return std::stoull(text, nullptr, 16);
}

ModelConfig stored_model_config(const h5::Group& root) {
  if (!root.has_attr("model_config")) return ModelConfig{};  // dense: the seven modules a layer
  return parse_model_config_text(root.attr_string("model_config"),
                                 str(root.file(), ": @model_config"));
}

std::vector<std::uint64_t> stored_module_hashes(const h5::Group& root, std::int64_t layers) {
  const ModelConfig config = stored_model_config(root);
  std::vector<std::uint64_t> hashes;
  for (std::int64_t l = 0; l < layers; ++l) {
    const h5::Group layer = root.open_group(layer_group_name(l));
    for (const ModuleId m : layer_modules(config, l))
      hashes.push_back(stored_hash(layer.open_group(checkpoint_module_name(config, m))));
  }
  return hashes;
}

std::uint64_t hash_quantized_tensors(const std::filesystem::path& checkpoint) {
  const h5::File file = h5::File::open_read(checkpoint);
  const h5::Group root = file.root();
  require(root.contains("layers") && root.has_attr("layers"), checkpoint.string(),
          ": no /layers group or @layers (not a qshard checkpoint)");
  const std::int64_t layers = root.attr_int("layers");
  require_layer_groups(root, layers);
  const ModelConfig config = stored_model_config(root);
  std::vector<std::uint64_t> hashes;
  for (std::int64_t l = 0; l < layers; ++l)
    for (const ModuleRecord& m : read_layer(file, config, l).modules)
      hashes.push_back(m.content_hash);
  return file_hash(root, hashes);
}

}  // namespace qshard
