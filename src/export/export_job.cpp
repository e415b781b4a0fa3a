// run_export: checkpoint -> Hugging Face directory (GPTQ or dense), layer by layer.
#include "qshard/export/export_job.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "qshard/core/error.hpp"
#include "qshard/core/text_file.hpp"
#include "qshard/export/gptq_module.hpp"
#include "qshard/export/gptq_quant_config.hpp"
#include "qshard/export/shard_writer.hpp"
#include "qshard/export/staging_directory.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/job_record.hpp"
#include "qshard/version.hpp"

namespace qshard {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Files a serving engine reads besides the weights, copied from --model when present.
constexpr const char* kSideFiles[] = {
    "tokenizer.json",  "tokenizer_config.json", "special_tokens_map.json",
    "tokenizer.model", "added_tokens.json",     "vocab.json",
    "merges.txt",      "generation_config.json"};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  require(out.good(), "cannot write ", path);
}

json parse_json(const std::string& text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(str(source, ": invalid JSON: ", e.what()));
  }
}

// The config.json to write: the source model's own file when --model is given (it keeps fields
// qshard does not model, e.g. token ids), which must describe the checkpoint's model; else the
// config the checkpoint records.
json base_config(const Checkpoint& checkpoint, const std::string& model_dir) {
  const std::string recorded = JobRecord::read(checkpoint).model_config;
  if (model_dir.empty()) return parse_json(recorded, str(checkpoint.path(), " @model_config"));
  const fs::path path = fs::path(model_dir) / "config.json";
  const std::string text = read_text_file(path);
  const ModelConfig source = parse_model_config_text(text, path.string());
  require(to_json(source) == to_json(checkpoint.model_config()), "--model ", model_dir,
          ": its config.json describes another model than checkpoint ", checkpoint.path());
  json config = parse_json(text, path.string());
  config.erase("quantization_config");
  return config;
}

// `values` as a tensor of `dtype`, or of F32 when `dtype` cannot hold every value exactly.
Tensor exact_tensor(const MatrixF& values, Shape shape, DType dtype) {
  require(element_count(shape) == static_cast<std::int64_t>(values.size()), "tensor shape ",
          shape_string(shape), " does not hold ", values.size(), " values");
  Tensor t = Tensor::from_f32(values.values(), shape, dtype);
  if (dtype == DType::F32 || t.to_f32() == values.values()) return t;
  return Tensor::from_f32(values.values(), std::move(shape), DType::F32);
}

// The checks a client relies on without re-deriving them: one bit width and group size for all
// modules, sym zeros at 2^(bits-1), and g_idx = c / group_size unless desc_act.
void check_module(const QuantizedWeight& w, const RecordedSettings& s, const std::string& name) {
  require(w.bits == s.bits && w.group_size == s.group_size, name, ": ", w.bits, "-bit group ",
          w.group_size, " differs from the job's ", s.bits, "-bit group ", s.group_size);
  if (s.sym) {
    const std::int32_t mid = 1 << (w.bits - 1);
    for (const std::int32_t z : w.zeros.values())
      require(z == mid, name, ": the job is symmetric but a zero point is ", z, ", not ", mid);
  }
  if (!s.act_order) {
    const std::vector<std::int32_t> expected = sequential_g_idx(w.cols(), w.group_size);
    for (std::size_t c = 0; c < expected.size(); ++c)
      require(w.g_idx[c] == expected[c], name, ": g_idx[", c, "] is ", w.g_idx[c],
              " without act_order (expected ", expected[c], ")");
  }
}

std::string layer_list(const std::set<std::int64_t>& layers) {
  std::ostringstream out;
  for (auto it = layers.begin(); it != layers.end();) {
    auto end = it;
    while (std::next(end) != layers.end() && *std::next(end) == *end + 1) ++end;
    out << (it == layers.begin() ? "" : ",") << *it;
    if (end != it) out << '-' << *end;
    it = std::next(end);
  }
  return out.str();
}

class Exporter {
 public:
  Exporter(const ExportOptions& o, std::ostream& log)
      : o_(o),
        log_(log),
        checkpoint_(o.checkpoint),
        job_(JobRecord::read(checkpoint_).settings(checkpoint_.path())) {}

  ExportSummary run() {
    const ModelConfig& config = checkpoint_.model_config();
    json hf_config = base_config(checkpoint_, o_.model);
    StagingDirectory out(o_.out, o_.force);
    ShardWriter shards(out.path(), o_.max_shard_bytes);
    const DType dtype = config.torch_dtype;
    const std::string embed(kEmbedName);
    shards.add(embed, exact_tensor(checkpoint_.model_tensor(embed),
                                   {config.vocab_size, config.hidden_size}, dtype));
    for (std::int64_t l = 0; l < checkpoint_.layer_count(); ++l) {
      const LayerRecord layer = checkpoint_.layer(l);
      shards.add(input_norm_name(l), exact_tensor(layer.input_norm, {config.hidden_size}, dtype));
      shards.add(post_attention_norm_name(l),
                 exact_tensor(layer.post_norm, {config.hidden_size}, dtype));
      if (config.qk_norm) {
        shards.add(q_norm_name(l), exact_tensor(layer.q_norm, {config.head_dim}, dtype));
        shards.add(k_norm_name(l), exact_tensor(layer.k_norm, {config.head_dim}, dtype));
      }
      if (config.sparse_layer(l)) {
        shards.add(router_name(config, l),
                   exact_tensor(layer.router, {config.moe.num_experts, config.hidden_size}, dtype));
        if (config.moe.shared_expert_intermediate > 0)
          shards.add(shared_expert_gate_name(l),
                     exact_tensor(layer.shared_expert_gate, {1, config.hidden_size}, dtype));
      }
      for (const ModuleRecord& m : layer.modules) add_module(shards, l, m, dtype);
    }
    const std::string norm(kFinalNormName);
    shards.add(norm, exact_tensor(checkpoint_.model_tensor(norm), {config.hidden_size}, dtype));
    const std::string head(kLmHeadName);
    if (checkpoint_.has_model_tensor(head))
      shards.add(head, exact_tensor(checkpoint_.model_tensor(head),
                                    {config.vocab_size, config.hidden_size}, dtype));
    shards.finish();
    write_configs(out.path(), hf_config);
    copy_side_files(out.path());
    out.commit();
    report_float_modules();
    summary_.tensors = shards.tensor_count();
    summary_.shards = shards.shard_count();
    summary_.bytes = shards.total_bytes();
    log_ << "qshard-export: wrote " << out.target().string() << ": " << summary_.tensors
         << " tensors, " << summary_.bytes << " bytes in " << summary_.shards << " shard"
         << (summary_.shards == 1 ? "" : "s") << "; " << summary_.quantized_modules
         << " linear modules packed, " << summary_.float_modules << " in floating point\n";
    return summary_;
  }

 private:
  void add_module(ShardWriter& shards, std::int64_t l, const ModuleRecord& m, DType dtype) {
    const ModelConfig& config = checkpoint_.model_config();
    const std::string path = module_path(config, m.module);
    const std::string name = gptq_module_name(l, path);
    const auto [rows, cols] = module_shape(config, m.module);
    if (m.method == "none") {
      shards.add(name + ".weight", exact_tensor(m.float_weight, {rows, cols}, dtype));
      if (o_.format == ExportFormat::Gptq)
        exclude(l, path, "the checkpoint keeps it in floating point (method none)");
      ++summary_.float_modules;
    } else if (o_.format == ExportFormat::Float) {
      shards.add(name + ".weight", Tensor::from_f32(m.weight.dequantize().values(), {rows, cols}));
      ++summary_.float_modules;
    } else {
      check_module(m.weight, job_, name);
      if (const auto reason =
              gptq_unpackable_reason(cols, rows, m.weight.bits, m.weight.group_size)) {
        shards.add(name + ".weight", exact_tensor(m.weight.dequantize(), {rows, cols}, dtype));
        exclude(l, path, str("dequantized: ", *reason));
        ++summary_.float_modules;
      } else {
        GptqModuleTensors t = pack_gptq_module(m.weight, o_.zero_format, name);
        shards.add(name + ".qweight", std::move(t.qweight));
        shards.add(name + ".qzeros", std::move(t.qzeros));
        shards.add(name + ".scales", std::move(t.scales));
        shards.add(name + ".g_idx", std::move(t.g_idx));
        ++summary_.quantized_modules;
      }
    }
    if (!m.bias.empty()) {
      const MatrixF bias(1, static_cast<std::int64_t>(m.bias.size()), m.bias);
      shards.add(name + ".bias", exact_tensor(bias, {rows}, dtype));
    }
  }

  void exclude(std::int64_t layer, const std::string& path, std::string reason) {
    excluded_[{path, reason}].insert(layer);
    settings_excluded_.push_back({layer, path, std::move(reason)});
  }

  void write_configs(const fs::path& dir, json hf_config) const {
    if (o_.format == ExportFormat::Float) {
      // Dequantized weights are fp32: loaders that cast to torch_dtype must not round them.
      hf_config.erase("quantization_config");
      if (hf_config.contains("dtype")) hf_config["dtype"] = "float32";
      hf_config["torch_dtype"] = "float32";
      write_text(dir / "config.json", hf_config.dump(2) + "\n");
      return;
    }
    GptqExportSettings s;
    s.bits = job_.bits;
    s.group_size = job_.group_size > 0 ? job_.group_size : -1;
    s.sym = job_.sym;
    s.desc_act = job_.act_order;
    s.static_groups = job_.static_groups;
    s.true_sequential = job_.true_sequential;
    s.damp_percent = job_.damp_percent;
    s.format = o_.zero_format;
    s.layers = checkpoint_.layer_count();
    s.groups = sequential_groups(checkpoint_.model_config());
    s.excluded = settings_excluded_;
    s.quantizer = str("qshard:", kVersion);
    const json quantization = gptq_quantization_config(s);
    hf_config["quantization_config"] = quantization;
    write_text(dir / "config.json", hf_config.dump(2) + "\n");
    write_text(dir / "quantize_config.json", quantization.dump(2) + "\n");
  }

  void copy_side_files(const fs::path& dir) const {
    if (o_.model.empty()) return;
    for (const char* name : kSideFiles) {
      const fs::path from = fs::path(o_.model) / name;
      if (!fs::is_regular_file(from)) continue;
      std::error_code ec;
      fs::copy_file(from, dir / name, fs::copy_options::overwrite_existing, ec);
      require(!ec, "cannot copy ", from, " to ", dir / name, ": ", ec.message());
      log_ << "qshard-export: copied " << name << '\n';
    }
  }

  void report_float_modules() const {
    for (const auto& [key, layers] : excluded_) {
      const auto& [path, reason] = key;
      log_ << "qshard-export: " << path << " of layer" << (layers.size() == 1 ? " " : "s ")
           << layer_list(layers)
           << ": written in floating point, excluded in the quantization config; " << reason
           << '\n';
    }
  }

  const ExportOptions& o_;
  std::ostream& log_;
  Checkpoint checkpoint_;
  RecordedSettings job_;
  std::map<std::pair<std::string, std::string>, std::set<std::int64_t>> excluded_;
  std::vector<ExcludedModule> settings_excluded_;
  ExportSummary summary_;
};

}  // namespace

ExportFormat parse_export_format(const std::string& name) {
  if (name == "gptq") return ExportFormat::Gptq;
  if (name == "float") return ExportFormat::Float;
  throw Error(str("--format: expected gptq or float (got '", name, "')"));
}

ExportSummary run_export(const ExportOptions& options, std::ostream& log) {
  require(!options.checkpoint.empty(), "give the checkpoint with --checkpoint");
  require(!options.out.empty(), "give the output directory with --out");
  require(options.model.empty() || fs::is_directory(options.model), "--model ", options.model,
          " is not a directory");
  return Exporter(options, log).run();
}

}  // namespace qshard
