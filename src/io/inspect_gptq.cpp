// The GPTQ part of qshard-inspect: the quantization config and how every module is stored.
#include <iomanip>

#include "qshard/core/error.hpp"
#include "qshard/io/inspect.hpp"

namespace qshard {
namespace {

constexpr const char* kPackedSuffixes[] = {".qweight", ".qzeros", ".scales", ".g_idx"};

std::string shape_or_dash(const SafetensorsModel& model, const std::string& name) {
  return model.contains(name) ? shape_string(model.view(name).shape) : "-";
}

}  // namespace

std::string packed_weight_name(const std::string& name) {
  for (const char* suffix : kPackedSuffixes) {
    const std::string_view s(suffix);
    if (name.size() > s.size() && name.ends_with(s))
      return name.substr(0, name.size() - s.size()) + ".weight";
  }
  return {};
}

void print_gptq_summary(std::ostream& out, const GptqConfig& c, const SafetensorsModel& model,
                        const ModelConfig& config) {
  const auto line = [&out](const char* key, const auto& value) {
    out << "  " << std::left << std::setw(26) << key << value << '\n';
  };
  out << "quantization (" << c.source << "):\n";
  line("quant_method", "gptq");
  line("bits", c.bits);
  line("group_size", c.group_size);
  line("sym", c.sym ? "true" : "false");
  line("desc_act", c.desc_act ? "true" : "false");
  line("static_groups", c.static_groups ? "true" : "false");
  line("checkpoint_format", c.zero_format == GptqZeroFormat::V1
                                ? "gptq (v1: qzeros hold zero - 1)"
                                : "gptq_v2 (qzeros hold the zero points)");
  line("lm_head", c.lm_head ? "quantized" : "not quantized");
  for (const GptqDynamicRule& rule : c.dynamic) {
    std::string what = rule.exclude ? "keep in floating point" : "override";
    if (rule.bits) what += str(" bits ", *rule.bits);
    if (rule.group_size) what += str(" group_size ", *rule.group_size);
    if (rule.sym) what += str(" sym ", *rule.sym ? "true" : "false");
    line("dynamic", str(rule.exclude ? "-:" : "+:", rule.pattern, "  (", what, ")"));
  }
  if (c.modules_in_block) {
    std::string names;
    for (const std::string& n : *c.modules_in_block) names += (names.empty() ? "" : ", ") + n;
    line("modules_in_block", names.empty() ? "(none)" : names);
  }

  std::vector<std::pair<std::string, std::pair<std::int64_t, std::int64_t>>> modules;
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l)
    for (const ModuleId module : layer_modules(config, l)) {
      const std::string weight = module_weight_name(config, l, module);
      modules.push_back({weight.substr(0, weight.size() - 7), module_shape(config, module)});
    }
  modules.push_back({"lm_head", {config.vocab_size, config.hidden_size}});
  std::size_t width = 6;
  for (const auto& m : modules) width = std::max(width, m.first.size());
  out << "\nmodules:\n"
      << std::left << std::setw(static_cast<int>(width)) << "module"
      << "  stored  bits  group  [out, in]      qweight         qzeros          scales\n";
  std::int64_t packed = 0, dense = 0;
  for (const auto& [prefix, shape] : modules) {
    const bool is_packed = model.contains(prefix + ".qweight");
    if (!is_packed && !model.contains(prefix + ".weight")) continue;  // e.g. a tied lm_head
    const auto settings = c.module(prefix);
    out << std::setw(static_cast<int>(width)) << prefix << "  " << std::setw(6)
        << (is_packed ? "packed" : "float") << "  ";
    if (is_packed) {
      ++packed;
      out << std::setw(4) << (settings ? std::to_string(settings->bits) : "?") << "  "
          << std::setw(5) << (settings ? std::to_string(settings->group_size) : "?") << "  ";
    } else {
      ++dense;
      out << std::setw(4) << "-"
          << "  " << std::setw(5) << "-"
          << "  ";
    }
    out << std::setw(13) << shape_string({shape.first, shape.second}) << "  ";
    if (is_packed) {
      out << std::setw(14) << shape_or_dash(model, prefix + ".qweight") << "  " << std::setw(14)
          << shape_or_dash(model, prefix + ".qzeros") << "  "
          << shape_or_dash(model, prefix + ".scales");
      if (!settings) out << "  (the config keeps it in floating point!)";
    } else {
      out << "weight " << shape_or_dash(model, prefix + ".weight")
          << (settings ? "  (the config quantizes it!)" : "  (excluded by the config)");
    }
    out << '\n';
  }
  out << '\n' << packed << " modules packed, " << dense << " in floating point\n\n";
}

}  // namespace qshard
