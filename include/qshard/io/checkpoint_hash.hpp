#pragma once
// The content hashes of a checkpoint (format 2, docs/CHECKPOINT.md): FNV-1a 64 (core/fnv1a.hpp)
// of each module's stored payload, `@content_hash` on its group, and of the whole file over the
// module hashes, `@layers` and `@model_config`, `@content_hash` on the root. Not cryptographic:
// they catch changed bytes (corruption, edits) that HDF5's per-chunk Fletcher32 cannot, e.g. a
// value rewritten through the HDF5 API, which recomputes the checksum.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qshard/core/fnv1a.hpp"  // hex64: the hashes as stored
#include "qshard/core/matrix.hpp"
#include "qshard/io/hdf5.hpp"
#include "qshard/io/model_config.hpp"

namespace qshard {

inline constexpr const char* kContentHashAttr = "content_hash";

// A module's payload as a reader gets it from the file: what its hash covers.
struct StoredModule {
  std::string_view method;  // "gptq", "rtn" or "none"
  // Quantized modules (method != "none"): the shape attributes and the four packed datasets.
  std::int64_t bits = 0;
  std::int64_t group_size = 0;
  std::int64_t in_features = 0;
  std::int64_t out_features = 0;
  const Matrix<std::int32_t>* qweight = nullptr;
  const Matrix<std::int32_t>* qzeros = nullptr;
  const Matrix<std::uint16_t>* scales = nullptr;
  std::span<const std::int32_t> g_idx;
  const MatrixF* weight = nullptr;  // method "none": the weight's values as read (fp32)
  std::span<const float> bias;      // empty when the module has none
};

// The module hash: its method, then for a quantized module bits, group_size, in_features,
// out_features, qweight, qzeros, scales and g_idx, then weight (kept in floating point) and bias
// where present; each tensor by name, shape and little-endian bytes.
std::uint64_t module_hash(const StoredModule& module);

// The file hash: @layers, @model_config ("" when absent), then the module hashes of every layer in
// order, each layer's modules in kAllLinears order. Not @job_config: it records paths (--out) and
// other settings that do not change the payload, and the same payload must hash the same.
std::uint64_t file_hash(std::int64_t layers, std::string_view model_config,
                        std::span<const std::uint64_t> module_hashes);
// file_hash of an open checkpoint's root from the given module hashes.
std::uint64_t file_hash(const h5::Group& root, std::span<const std::uint64_t> module_hashes);

// The stored `@content_hash` of `group`; throws naming the group when absent or malformed.
std::uint64_t stored_hash(const h5::Group& group);
// The stored module hashes of layers [0, layers) in file_hash order; throws naming the module
// that has none.
std::vector<std::uint64_t> stored_module_hashes(const h5::Group& root, std::int64_t layers);
// The checkpoint's @model_config (which modules each layer holds), errors naming the file; a
// dense model's default without one.
ModelConfig stored_model_config(const h5::Group& root);

}  // namespace qshard
