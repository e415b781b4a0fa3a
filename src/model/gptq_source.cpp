// GPTQ directories as a WeightSource: qweight/qzeros/scales/g_idx dequantized on load.
#include "qshard/model/gptq_source.hpp"

#include <algorithm>
#include <cstring>
#include <iostream>

#include "hf_tensors.hpp"
#include "qshard/core/error.hpp"
#include "qshard/quant/packing.hpp"

namespace qshard {
namespace {

// The tensor `name` of `model`, required to have `dtype` and `shape`.
TensorView checked_view(const SafetensorsModel& model, const std::string& name, DType dtype,
                        const Shape& shape, const std::string& why) {
  require(model.contains(name), model.directory(), ": tensor '", name, "' is missing (", why, ")");
  const TensorView view = model.view(name);
  require(view.dtype == dtype, model.file_of(name), ": tensor '", name, "' is ",
          dtype_name(view.dtype), ", expected ", dtype_name(dtype));
  require(view.shape == shape, model.file_of(name), ": tensor '", name, "' has shape ",
          shape_string(view.shape), ", expected ", shape_string(shape), " (", why, ")");
  return view;
}

Matrix<std::int32_t> int_matrix(const TensorView& view) {
  Matrix<std::int32_t> m(view.shape[0], view.shape.size() == 2 ? view.shape[1] : 1);
  if (m.size() > 0) std::memcpy(m.data(), view.bytes.data(), view.bytes.size());
  return m;
}

// v1 stores zero - 1, so an asymmetric zero point of 0 has no encoding: written anyway (GPTQModel
// does) it wraps to the all-ones field, which read_gptq_module reads as 2^bits like AutoGPTQ's
// kernels, while GPTQModel's loader reads 0 and carries 1 into the neighbouring field. Either way
// the group is not what the quantizer chose; says so for each module read.
void warn_wrapped_zeros(const std::filesystem::path& file, const std::string& prefix,
                        const QuantizedWeight& w) {
  const auto& zeros = w.zeros.values();
  const auto wrapped = std::count(zeros.begin(), zeros.end(), std::int32_t{1} << w.bits);
  if (wrapped == 0) return;
  std::cerr << "qshard: warning: " << file.string() << ": tensor '" << prefix << ".qzeros' holds "
            << wrapped << " v1 zero field(s) of all ones, a zero point of 0 that wrapped when "
            << "written (v1 stores zero - 1); read as " << (1 << w.bits)
            << " as AutoGPTQ's kernels do. python bench/gptq_zeros_v1_to_v2.py rewrites the "
               "directory as gptq_v2 with the zeros meant\n";
}

// The linear module (or lm_head) a ".weight" name belongs to: its prefix and [out, in].
struct ModuleRef {
  std::string prefix;
  std::int64_t out = 0;
  std::int64_t in = 0;
};

std::optional<ModuleRef> module_of(const ModelConfig& c, const std::string& name) {
  if (name == kLmHeadName) return ModuleRef{"lm_head", c.vocab_size, c.hidden_size};
  const auto ref = parse_tensor_name(name);
  if (!ref || !ref->module || ref->field != "weight") return std::nullopt;
  const auto [out, in] = module_shape(c, *ref->module);
  return ModuleRef{name.substr(0, name.size() - std::string_view(".weight").size()), out, in};
}

class GptqSource final : public WeightSource {
 public:
  explicit GptqSource(const std::filesystem::path& dir)
      : directory_(dir),
        config_(parse_model_config(dir / "config.json")),
        gptq_(*read_gptq_config(dir)),
        model_(dir) {
    model_detail::check_stored_layers(model_, config_, dir);
  }
  const ModelConfig& config() const override { return config_; }
  bool contains(const std::string& name) const override {
    if (model_.contains(name)) return true;
    if (const auto m = module_of(config_, name); m && model_.contains(m->prefix + ".qweight"))
      return true;
    return name == kLmHeadName && config_.tie_word_embeddings;
  }
  MatrixF load(const std::string& name) const override {
    const auto m = module_of(config_, name);
    if (m && model_.contains(m->prefix + ".qweight")) {
      const auto settings = gptq_.module(m->prefix);
      require(settings.has_value(), model_.file_of(m->prefix + ".qweight"), ": tensor '", m->prefix,
              ".qweight' is packed but ", gptq_.source, " keeps the module in floating point");
      const QuantizedWeight w =
          read_gptq_module(model_, gptq_, *settings, m->prefix, m->out, m->in);
      if (gptq_.zero_format == GptqZeroFormat::V1 && !settings->sym)
        warn_wrapped_zeros(model_.file_of(m->prefix + ".qzeros"), m->prefix, w);
      return w.dequantize();
    }
    const bool tied_head = name == kLmHeadName && config_.tie_word_embeddings;
    require(!m || tied_head || !gptq_.module(m->prefix), directory_, ": ", gptq_.source,
            " quantizes module '", m ? m->prefix : name, "' but there is no tensor '",
            m ? m->prefix : name, ".qweight'",
            model_.contains(name) ? str(" (only '", name, "')") : std::string());
    return model_detail::load_float_tensor(model_, config_, directory_, name);
  }
  std::string describe() const override { return str("GPTQ model ", directory_); }

 private:
  std::filesystem::path directory_;
  ModelConfig config_;
  GptqConfig gptq_;
  SafetensorsModel model_;
};

}  // namespace

QuantizedWeight read_gptq_module(const SafetensorsModel& model, const GptqConfig& config,
                                 const GptqModuleSettings& s, const std::string& prefix,
                                 std::int64_t out, std::int64_t in) {
  const std::int64_t groups = group_count(in, s.group_size);
  const std::string layout = str(out, " x ", in, " features, ", s.bits, "-bit, group size ",
                                 s.group_size, " (", groups, " groups)");
  const TensorView qweight =
      checked_view(model, prefix + ".qweight", DType::I32, {packed_words(in, s.bits), out}, layout);
  const TensorView qzeros = checked_view(model, prefix + ".qzeros", DType::I32,
                                         {groups, packed_words(out, s.bits)}, layout);
  const std::string scales_name = prefix + ".scales";
  require(model.contains(scales_name), model.directory(), ": tensor '", scales_name,
          "' is missing (", layout, ")");
  const TensorView scales = model.view(scales_name);
  require(is_float(scales.dtype), model.file_of(scales_name), ": tensor '", scales_name, "' is ",
          dtype_name(scales.dtype), ", expected F16");
  require(scales.shape == Shape{groups, out}, model.file_of(scales_name), ": tensor '", scales_name,
          "' has shape ", shape_string(scales.shape), ", expected ", shape_string({groups, out}),
          " (", layout, ")");

  QuantizedWeight w;  // filled from the unpacked tensors (QuantizedWeight::allocate's fields)
  w.bits = s.bits;
  w.group_size = s.group_size;
  w.codes = unpack_qweight(int_matrix(qweight), s.bits, out, in);
  w.zeros = unpack_qzeros(int_matrix(qzeros), s.bits, out, groups, 0);
  if (config.zero_format == GptqZeroFormat::V1)  // stored zero - 1, read back without wrapping
    for (std::int32_t& z : w.zeros.values()) z += 1;
  const MatrixF scales_t = scales.to_matrix();  // [groups, out]
  w.scales = MatrixF(out, groups);
  for (std::int64_t g = 0; g < groups; ++g)
    for (std::int64_t r = 0; r < out; ++r) w.scales(r, g) = scales_t(g, r);
  const std::string g_idx_name = prefix + ".g_idx";
  if (model.contains(g_idx_name)) {
    const TensorView g_idx = checked_view(model, g_idx_name, DType::I32, {in}, layout);
    w.g_idx.resize(static_cast<std::size_t>(in));
    if (in > 0) std::memcpy(w.g_idx.data(), g_idx.bytes.data(), g_idx.bytes.size());
  } else {
    w.g_idx = sequential_g_idx(in, s.group_size);
  }
  for (std::int64_t c = 0; c < in; ++c) {
    const std::int32_t g = w.g_idx[static_cast<std::size_t>(c)];
    require(g >= 0 && g < groups, model.directory(), ": tensor '", g_idx_name, "' maps ",
            "input feature ", c, " to group ", g, " of ", groups);
  }
  return w;
}

std::unique_ptr<WeightSource> open_gptq_model(const std::filesystem::path& directory) {
  require(std::filesystem::is_directory(directory), "model directory ", directory,
          " does not exist");
  require(read_gptq_config(directory).has_value(), directory,
          " is not a GPTQ model (no quantization_config with quant_method gptq)");
  return std::make_unique<GptqSource>(directory);
}

}  // namespace qshard
