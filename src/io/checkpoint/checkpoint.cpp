#include "qshard/io/checkpoint.hpp"

#include <cmath>

#include <system_error>

#include "qshard/core/error.hpp"
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

void write_module(const h5::Group& layer, const ModuleRecord& m, DType float_dtype) {
  const h5::Group g = layer.create_group(std::string(linear_name(m.linear)));
  g.set_attr("method", m.method);
  g.set_attr("objective_gptq", m.objective_gptq);
  g.set_attr("objective_rtn", m.objective_rtn);
  g.set_attr("damp_percent_used", m.damp_percent_used);
  g.set_attr("damp_steps", m.damp_steps);
  if (!m.bias.empty()) {
    const MatrixF bias(1, static_cast<std::int64_t>(m.bias.size()), m.bias);
    write_float(g, "bias", bias, DType::F32);
  }
  if (m.method == "none") {
    write_float(g, "weight", m.float_weight, float_dtype);
    return;
  }
  const QuantizedWeight& w = m.weight;
  g.set_attr("bits", static_cast<std::int64_t>(w.bits));
  g.set_attr("group_size", w.group_size);
  g.set_attr("in_features", w.cols());
  g.set_attr("out_features", w.rows());
  g.set_attr("zero_offset", std::int64_t{0});
  write_matrix(g, "qweight", pack_qweight(w.codes, w.bits));
  write_matrix(g, "qzeros", pack_qzeros(w.zeros, w.bits, 0));
  write_matrix(g, "scales", pack_scales_f16(w.scales));
  g.write<std::int32_t>("g_idx", w.g_idx, {w.cols()});
}

ModuleRecord read_module(const h5::Group& layer, Linear linear) {
  const h5::Group g = layer.open_group(std::string(linear_name(linear)));
  ModuleRecord m;
  m.linear = linear;
  m.method = g.attr_string("method");
  m.objective_gptq = g.attr_double("objective_gptq");
  m.objective_rtn = g.attr_double("objective_rtn");
  m.damp_percent_used = g.attr_double("damp_percent_used");
  m.damp_steps = g.attr_int("damp_steps");
  if (g.contains("bias")) m.bias = read_float(g, "bias").values();
  if (m.method == "none") {
    m.float_weight = read_float(g, "weight");
    return m;
  }
  QuantizedWeight& w = m.weight;
  w.bits = static_cast<int>(g.attr_int("bits"));
  w.group_size = g.attr_int("group_size");
  const std::int64_t cols = g.attr_int("in_features");
  const std::int64_t rows = g.attr_int("out_features");
  require(g.attr_int("zero_offset") == 0, g.path(), ": unsupported zero_offset");
  w.codes = unpack_qweight(read_matrix<std::int32_t>(g, "qweight"), w.bits, rows, cols);
  w.scales = unpack_scales_f16(read_matrix<std::uint16_t>(g, "scales"));
  w.zeros = unpack_qzeros(read_matrix<std::int32_t>(g, "qzeros"), w.bits, rows, w.scales.cols(), 0);
  w.g_idx = g.read<std::int32_t>("g_idx");
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

const ModuleRecord& LayerRecord::module(Linear linear) const {
  for (const ModuleRecord& m : modules)
    if (m.linear == linear) return m;
  throw Error(str("layer ", index, " has no module ", linear_name(linear)));
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

void write_layer_file(const std::filesystem::path& path, const LayerRecord& layer,
                      DType float_dtype) {
  std::filesystem::path temporary = path;
  temporary += ".tmp";
  {
    const h5::File file = h5::File::create(temporary);
    const h5::Group layers = file.root().create_group("layers");
    const h5::Group g = layers.create_group(layer_group_name(layer.index).substr(7));
    g.set_attr("index", layer.index);
    g.set_attr("seconds", layer.seconds);
    write_float(g, "input_layernorm.weight", layer.input_norm, float_dtype);
    write_float(g, "post_attention_layernorm.weight", layer.post_norm, float_dtype);
    for (const ModuleRecord& m : layer.modules) write_module(g, m, float_dtype);
    file.flush();
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  require(!ec, "cannot rename ", temporary, " to ", path, ": ", ec.message());
}

LayerRecord read_layer(const h5::File& file, std::int64_t index) {
  const h5::Group g = file.root().open_group(layer_group_name(index));
  LayerRecord layer;
  layer.index = index;
  layer.seconds = g.attr_double("seconds");
  layer.input_norm = read_float(g, "input_layernorm.weight");
  layer.post_norm = read_float(g, "post_attention_layernorm.weight");
  for (const Linear l : kAllLinears) layer.modules.push_back(read_module(g, l));
  return layer;
}

CheckpointWriter::CheckpointWriter(std::filesystem::path path) : path_(std::move(path)) {
  temporary_ = path_;
  temporary_ += ".tmp";
  file_.emplace(h5::File::create(temporary_));
  file_->root().create_group("layers");
  file_->root().create_group("model");
}

CheckpointWriter::~CheckpointWriter() {
  if (!committed_) {
    file_.reset();
    std::error_code ec;
    std::filesystem::remove(temporary_, ec);
  }
}

void CheckpointWriter::add_layer_file(const std::filesystem::path& layer_file, std::int64_t index) {
  const h5::File part = h5::File::open_read(layer_file);
  const std::string name = layer_group_name(index);
  const herr_t rc = H5Ocopy(part.root().id(), name.c_str(), file_->root().id(), name.c_str(),
                            H5P_DEFAULT, H5P_DEFAULT);
  require(rc >= 0, "cannot copy ", name, " from ", layer_file, " into ", temporary_);
}

void CheckpointWriter::write_model_tensor(const std::string& name, const MatrixF& values,
                                          DType dtype) {
  write_float(file_->root().open_group("model"), name, values, dtype);
}

void CheckpointWriter::commit() {
  file_->flush();
  file_.reset();
  std::error_code ec;
  std::filesystem::rename(temporary_, path_, ec);
  require(!ec, "cannot rename ", temporary_, " to ", path_, ": ", ec.message());
  committed_ = true;
}

Checkpoint::Checkpoint(const std::filesystem::path& path)
    : path_(path), file_(h5::File::open_read(path)) {
  const h5::Group root = file_.root();
  require(root.has_attr("format") && root.attr_string("format") == kCheckpointFormat, path,
          " is not a qshard checkpoint (no format = \"", kCheckpointFormat, "\" attribute)");
  require(root.attr_int("format_version") == kCheckpointFormatVersion, path,
          ": unsupported format_version ", root.attr_int("format_version"));
  config_ = parse_model_config_text(root.attr_string("model_config"), path.string());
  layers_ = root.attr_int("layers");
}

LayerRecord Checkpoint::layer(std::int64_t index) const {
  require(index >= 0 && index < layers_, path_, ": no layer ", index, " (", layers_, " layers)");
  return read_layer(file_, index);
}

bool Checkpoint::has_model_tensor(const std::string& name) const {
  return file_.root().open_group("model").contains(name);
}

MatrixF Checkpoint::model_tensor(const std::string& name) const {
  const h5::Group model = file_.root().open_group("model");
  require(model.contains(name), path_, ": no tensor /model/", name);
  return read_float(model, name);
}

std::string Checkpoint::attr(const std::string& name) const {
  return file_.root().attr_string(name);
}

}  // namespace qshard
