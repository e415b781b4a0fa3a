// The layer and module encoding of the checkpoint (docs/CHECKPOINT.md): writing and reading one
// layer group, with each module's content hash.
#include "qshard/io/checkpoint.hpp"

#include <cmath>
#include <system_error>

#include "qshard/core/disk.hpp"
#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint_hash.hpp"
#include "qshard/quant/packing.hpp"

namespace qshard {
namespace {

std::vector<std::int64_t> shape_of(const auto& matrix) { return {matrix.rows(), matrix.cols()}; }

template <typename T>
void write_matrix(const h5::Group& group, const std::string& name, const Matrix<T>& m) {
  group.write<T>(name, std::span<const T>(m.data(), m.size()), shape_of(m));
}

template <typename T>
Matrix<T> read_matrix(const h5::Group& group, const std::string& name) {
  std::vector<std::int64_t> shape;
  std::vector<T> values = group.read<T>(name, &shape);
  require(shape.size() == 2, group.path(), "/", name, ": expected a 2-D dataset");
  return Matrix<T>(shape[0], shape[1], std::move(values));
}

// The values a reader gets back from a floating-point tensor stored in `dtype`.
MatrixF stored_values(const MatrixF& values, DType dtype) {
  if (dtype != DType::F16 && dtype != DType::BF16) return values;
  std::vector<std::uint16_t> bits(values.size());
  convert_from_f32(values.data(), values.size(), dtype, bits.data());
  MatrixF out(values.rows(), values.cols());
  convert_to_f32(bits.data(), dtype, bits.size(), out.data());
  return out;
}

void write_module(const h5::Group& layer, const ModelConfig& config, const ModuleRecord& m,
                  DType float_dtype) {
  const h5::Group g = layer.create_group(checkpoint_module_name(config, m.module));
  g.set_attr("method", m.method);
  g.set_attr("calibration_tokens", m.calibration_tokens);
  g.set_attr("objective_gptq", m.objective_gptq);
  g.set_attr("objective_rtn", m.objective_rtn);
  g.set_attr("damp_percent_used", m.damp_percent_used);
  g.set_attr("damp_steps", m.damp_steps);
  if (!m.bias.empty()) {
    const MatrixF bias(1, static_cast<std::int64_t>(m.bias.size()), m.bias);
    write_float(g, "bias", bias, DType::F32);
  }
  StoredModule stored;
  stored.method = m.method;
  stored.bias = m.bias;
  if (m.method == "none") {
    write_float(g, "weight", m.float_weight, float_dtype);
    const MatrixF weight = stored_values(m.float_weight, float_dtype);
    stored.weight = &weight;
    g.set_attr(kContentHashAttr, hex64(module_hash(stored)));
    return;
  }
  const QuantizedWeight& w = m.weight;
  g.set_attr("bits", static_cast<std::int64_t>(w.bits));
  g.set_attr("group_size", w.group_size);
  g.set_attr("in_features", w.cols());
  g.set_attr("out_features", w.rows());
  g.set_attr("zero_offset", std::int64_t{0});
  const Matrix<std::int32_t> qweight = pack_qweight(w.codes, w.bits);
  const Matrix<std::int32_t> qzeros = pack_qzeros(w.zeros, w.bits, 0);
  const Matrix<std::uint16_t> scales = pack_scales_f16(w.scales);
  write_matrix(g, "qweight", qweight);
  write_matrix(g, "qzeros", qzeros);
  write_matrix(g, "scales", scales);
  g.write<std::int32_t>("g_idx", w.g_idx, {w.cols()});
  stored.bits = w.bits;
  stored.group_size = w.group_size;
  stored.in_features = w.cols();
  stored.out_features = w.rows();
  stored.qweight = &qweight;
  stored.qzeros = &qzeros;
  stored.scales = &scales;
  stored.g_idx = w.g_idx;
  g.set_attr(kContentHashAttr, hex64(module_hash(stored)));
}

// Refuses a module whose payload does not hash to its stored @content_hash (format 1 files have
// none: nothing to compare).
void check_module_hash(const h5::Group& g, std::uint64_t computed) {
  if (!g.has_attr(kContentHashAttr)) return;
  const std::uint64_t stored = stored_hash(g);
  require(stored == computed, g.file(), ": module ", g.path(), ": content hash mismatch (stored ",
          hex64(stored), ", computed ", hex64(computed),
          "): its qweight, qzeros, scales, g_idx or other data changed after "
          "it was written; the checkpoint is corrupted");
}

ModuleRecord read_module(const h5::Group& layer, const ModelConfig& config, ModuleId module) {
  const h5::Group g = layer.open_group(checkpoint_module_name(config, module));
  ModuleRecord m;
  m.module = module;
  m.method = g.attr_string("method");
  if (g.has_attr("calibration_tokens")) m.calibration_tokens = g.attr_int("calibration_tokens");
  m.objective_gptq = g.attr_double("objective_gptq");
  m.objective_rtn = g.attr_double("objective_rtn");
  m.damp_percent_used = g.attr_double("damp_percent_used");
  m.damp_steps = g.attr_int("damp_steps");
  if (g.contains("bias")) m.bias = read_float(g, "bias").values();
  StoredModule stored;
  stored.method = m.method;
  stored.bias = m.bias;
  if (m.method == "none") {
    m.float_weight = read_float(g, "weight");
    stored.weight = &m.float_weight;
    m.content_hash = module_hash(stored);
    check_module_hash(g, m.content_hash);
    return m;
  }
  QuantizedWeight& w = m.weight;
  const std::int64_t bits = g.attr_int("bits");
  w.bits = static_cast<int>(bits);
  w.group_size = g.attr_int("group_size");
  const std::int64_t cols = g.attr_int("in_features");
  const std::int64_t rows = g.attr_int("out_features");
  require(g.attr_int("zero_offset") == 0, g.path(), ": unsupported zero_offset");
  const Matrix<std::int32_t> qweight = read_matrix<std::int32_t>(g, "qweight");
  const Matrix<std::int32_t> qzeros = read_matrix<std::int32_t>(g, "qzeros");
  const Matrix<std::uint16_t> scales = read_matrix<std::uint16_t>(g, "scales");
  w.g_idx = g.read<std::int32_t>("g_idx");
  stored.bits = bits;
  stored.group_size = w.group_size;
  stored.in_features = cols;
  stored.out_features = rows;
  stored.qweight = &qweight;
  stored.qzeros = &qzeros;
  stored.scales = &scales;
  stored.g_idx = w.g_idx;
  m.content_hash = module_hash(stored);
  check_module_hash(g, m.content_hash);
  w.codes = unpack_qweight(qweight, w.bits, rows, cols);
  w.scales = unpack_scales_f16(scales);
  w.zeros = unpack_qzeros(qzeros, w.bits, rows, w.scales.cols(), 0);
  require(static_cast<std::int64_t>(w.g_idx.size()) == cols, g.path(), "/g_idx has ",
          w.g_idx.size(), " entries, expected in_features = ", cols);
  require(w.scales.rows() == rows, g.path(), "/scales does not match out_features ", rows);
  // Everything a reader indexes or multiplies with is checked before use.
  const std::int64_t groups = w.scales.cols();
  for (std::size_t c = 0; c < w.g_idx.size(); ++c)
    require(w.g_idx[c] >= 0 && w.g_idx[c] < groups, g.path(), "/g_idx[", c, "] = ", w.g_idx[c],
            " is outside the ", groups, " groups of ", g.path(), "/scales");
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t k = 0; k < groups; ++k)
      require(std::isfinite(w.scales(r, k)), g.path(), "/scales[", r, ", ", k, "] is ",
              w.scales(r, k), " (not finite)");
  return m;
}

}  // namespace

const ModuleRecord& LayerRecord::module(ModuleId id) const {
  for (const ModuleRecord& m : modules)
    if (m.module == id) return m;
  throw Error(str("layer ", index, " has no module ", linear_name(id.linear),
                  id.dense() ? "" : str(" of expert ", id.expert)));
}

std::string layer_group_name(std::int64_t index) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%05lld", static_cast<long long>(index));
  return str("layers/", digits);
}

void write_float(const h5::Group& group, const std::string& name, const MatrixF& values,
                 DType dtype) {
  if (dtype == DType::F16 || dtype == DType::BF16) {
    Matrix<std::uint16_t> bits(values.rows(), values.cols());
    convert_from_f32(values.data(), values.size(), dtype, bits.data());
    write_matrix(group, name, bits);
    // The element type is an attribute of the group, named after the dataset.
    group.set_attr(name + ".dtype", std::string(dtype_name(dtype)));
    return;
  }
  write_matrix(group, name, values);
}

MatrixF read_float(const h5::Group& group, const std::string& name) {
  const h5::DatasetInfo info = group.info(name);
  if (info.type_class == H5T_INTEGER && info.type_size == 2) {
    const DType dtype = parse_dtype(group.attr_string(name + ".dtype"));
    const Matrix<std::uint16_t> bits = read_matrix<std::uint16_t>(group, name);
    MatrixF out(bits.rows(), bits.cols());
    convert_to_f32(bits.data(), dtype, bits.size(), out.data());
    return out;
  }
  return read_matrix<float>(group, name);
}

void write_layer_file(const std::filesystem::path& path, const ModelConfig& config,
                      const LayerRecord& layer, DType float_dtype) {
  std::filesystem::path temporary = path;
  temporary += ".tmp";
  try {
    h5::File file = h5::File::create(temporary);
    {
      const h5::Group layers = file.root().create_group("layers");
      const h5::Group g = layers.create_group(layer_group_name(layer.index).substr(7));
      g.set_attr("index", layer.index);
      g.set_attr("seconds", layer.seconds);
      write_float(g, "input_layernorm.weight", layer.input_norm, float_dtype);
      write_float(g, "post_attention_layernorm.weight", layer.post_norm, float_dtype);
      if (!layer.q_norm.empty())
        write_float(g, "self_attn.q_norm.weight", layer.q_norm, float_dtype);
      if (!layer.k_norm.empty())
        write_float(g, "self_attn.k_norm.weight", layer.k_norm, float_dtype);
      if (!layer.router.empty()) write_float(g, router_path(config), layer.router, float_dtype);
      if (!layer.shared_expert_gate.empty())
        write_float(g, std::string(kSharedExpertGatePath), layer.shared_expert_gate, float_dtype);
      for (const ModuleRecord& m : layer.modules) write_module(g, config, m, float_dtype);
    }
    file.close();
    sync_file(temporary);  // a layer file under its name is whole, even after a crash
  } catch (const std::exception&) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);  // a failed write leaves nothing behind
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  require(!ec, "cannot rename ", temporary, " to ", path, ": ", ec.message());
}

LayerRecord read_layer(const h5::File& file, const ModelConfig& config, std::int64_t index) {
  const h5::Group g = file.root().open_group(layer_group_name(index));
  LayerRecord layer;
  layer.index = index;
  layer.seconds = g.attr_double("seconds");
  layer.input_norm = read_float(g, "input_layernorm.weight");
  layer.post_norm = read_float(g, "post_attention_layernorm.weight");
  if (g.contains("self_attn.q_norm.weight"))
    layer.q_norm = read_float(g, "self_attn.q_norm.weight");
  if (g.contains("self_attn.k_norm.weight"))
    layer.k_norm = read_float(g, "self_attn.k_norm.weight");
  if (config.sparse_layer(index)) {
    layer.router = read_float(g, router_path(config));
    if (config.moe.shared_expert_intermediate > 0)
      layer.shared_expert_gate = read_float(g, std::string(kSharedExpertGatePath));
  }
  for (const ModuleId m : layer_modules(config, index))
    layer.modules.push_back(read_module(g, config, m));
  return layer;
}

}  // namespace qshard
