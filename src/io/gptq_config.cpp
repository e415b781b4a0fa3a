// GPTQ quantization configs: config.json "quantization_config" or quantize_config.json.
#include "qshard/io/gptq_config.hpp"

#include <algorithm>
#include <cctype>
#include <regex>

#include "qshard/core/error.hpp"
#include "qshard/core/text_file.hpp"
#include "strict_json.hpp"

namespace qshard {
namespace {

using nlohmann::json;

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Typed fields of one JSON object; errors name the source and the field.
class Fields {
 public:
  Fields(const json& root, std::string where) : root_(root), where_(std::move(where)) {}
  const json* find(const char* name) const {
    const auto it = root_.find(name);
    return it == root_.end() || it->is_null() ? nullptr : &*it;
  }
  std::int64_t integer(const char* name, std::optional<std::int64_t> fallback) const {
    const json* v = find(name);
    require(v != nullptr || fallback.has_value(), where_, ": missing required field '", name, "'");
    if (v == nullptr) return *fallback;
    require(v->is_number_integer(), where_, ": field '", name, "' must be an integer, not ",
            v->dump());
    return v->get<std::int64_t>();
  }
  bool boolean(const char* name, bool fallback) const {
    const json* v = find(name);
    if (v == nullptr) return fallback;
    require(v->is_boolean(), where_, ": field '", name, "' must be true or false, not ", v->dump());
    return v->get<bool>();
  }
  std::optional<std::string> string(const char* name) const {
    const json* v = find(name);
    if (v == nullptr) return std::nullopt;
    require(v->is_string(), where_, ": field '", name, "' must be a string, not ", v->dump());
    return v->get<std::string>();
  }
  const std::string& where() const { return where_; }

 private:
  const json& root_;
  std::string where_;
};

int checked_bits(std::int64_t bits, std::string_view where) {
  require(bits == 2 || bits == 3 || bits == 4 || bits == 8, where, ": unsupported bits ", bits,
          " (qshard reads 2, 3, 4 and 8)");
  return static_cast<int>(bits);
}

std::int64_t checked_group_size(std::int64_t size, std::string_view where) {
  require(size == -1 || size > 0, where, ": group_size must be -1 or positive, not ", size);
  return size;
}

std::vector<GptqDynamicRule> parse_dynamic(const json& value, const std::string& where) {
  require(value.is_object(), where, ": field 'dynamic' must be an object, not ", value.type_name());
  std::vector<GptqDynamicRule> excluded, overrides;
  for (const auto& [key, body] : value.items()) {
    GptqDynamicRule rule;
    rule.exclude = key.starts_with("-:");
    rule.pattern = key.starts_with("-:") || key.starts_with("+:") ? key.substr(2) : key;
    try {
      const std::regex check(rule.pattern);
    } catch (const std::regex_error& e) {
      throw Error(str(where, ": dynamic rule '", key, "' is not a regular expression: ", e.what()));
    }
    if (!rule.exclude) {
      require(body.is_object(), where, ": dynamic rule '", key, "' must map to an object");
      const Fields f(body, str(where, " (dynamic rule '", key, "')"));
      if (f.find("bits")) rule.bits = checked_bits(f.integer("bits", {}), f.where());
      if (f.find("group_size"))
        rule.group_size = checked_group_size(f.integer("group_size", {}), f.where());
      if (f.find("sym")) rule.sym = f.boolean("sym", true);
    }
    (rule.exclude ? excluded : overrides).push_back(std::move(rule));
  }
  excluded.insert(excluded.end(), overrides.begin(), overrides.end());
  return excluded;
}

std::vector<std::string> parse_modules_in_block(const json& value, const std::string& where) {
  const std::string field = "field 'modules_in_block_to_quantize'";
  require(value.is_array(), where, ": ", field, " must be a list of lists of names");
  std::vector<std::string> names;
  for (const json& group : value) {
    require(group.is_array(), where, ": ", field, " must be a list of lists of names");
    for (const json& name : group) {
      require(name.is_string(), where, ": ", field, " holds ", name.dump(), ", not a name");
      names.push_back(name.get<std::string>());
    }
  }
  return names;
}

}  // namespace

std::string_view gptq_format_name(GptqZeroFormat format) {
  return format == GptqZeroFormat::V1 ? "gptq" : "gptq_v2";
}

GptqZeroFormat parse_gptq_format(std::string_view name, std::string_view where) {
  const std::string lowered = lower(std::string(name));
  if (lowered == "gptq") return GptqZeroFormat::V1;
  if (lowered == "gptq_v2") return GptqZeroFormat::V2;
  throw Error(str(where, ": unsupported checkpoint_format '", name,
                  "' (qshard reads the gptq and gptq_v2 layouts)"));
}

std::optional<GptqModuleSettings> GptqConfig::module(const std::string& name) const {
  GptqModuleSettings settings{bits, group_size, sym};
  for (const GptqDynamicRule& rule : dynamic) {
    if (!std::regex_search(name, std::regex(rule.pattern), std::regex_constants::match_continuous))
      continue;
    if (rule.exclude) return std::nullopt;
    settings.bits = rule.bits.value_or(settings.bits);
    settings.group_size = rule.group_size.value_or(settings.group_size);
    settings.sym = rule.sym.value_or(settings.sym);
    break;  // the first matching override applies, as in GPTQModel
  }
  if (name == "lm_head") return lm_head ? std::optional(settings) : std::nullopt;
  if (modules_in_block &&
      std::none_of(modules_in_block->begin(), modules_in_block->end(),
                   [&](const std::string& suffix) { return name.ends_with(suffix); }))
    return std::nullopt;
  return settings;
}

GptqConfig parse_gptq_config(std::string_view json_text, std::string_view source) {
  const json root = io_detail::parse_json_strict(json_text, source);
  require(root.is_object(), source, ": the quantization config must be a JSON object");
  const Fields f(root, std::string(source));
  GptqConfig c;
  c.source = std::string(source);
  if (const auto method = f.string("quant_method"))
    require(lower(*method) == "gptq", source, ": quant_method is '", *method, "', not gptq");
  require(!f.boolean("is_marlin_format", false), source,
          ": is_marlin_format checkpoints (Marlin-repacked weights) are not supported");
  if (const auto pack = f.string("pack_dtype"))
    require(lower(*pack) == "int32" || lower(*pack) == "torch.int32", source,
            ": unsupported pack_dtype '", *pack, "' (qshard reads int32 words)");
  c.bits = checked_bits(f.integer("bits", {}), source);
  c.group_size = checked_group_size(f.integer("group_size", 128), source);
  c.sym = f.boolean("sym", true);
  c.desc_act = f.boolean("desc_act", false);
  c.static_groups = f.boolean("static_groups", false);
  c.true_sequential = f.boolean("true_sequential", true);
  c.lm_head = f.boolean("lm_head", false);
  if (const json* damp = f.find("damp_percent")) {
    require(damp->is_number(), source, ": field 'damp_percent' must be a number");
    c.damp_percent = damp->get<double>();
  }
  const auto format =
      f.string("checkpoint_format") ? f.string("checkpoint_format") : f.string("format");
  c.zero_format = parse_gptq_format(format.value_or("gptq"), source);
  if (const json* dynamic = f.find("dynamic")) c.dynamic = parse_dynamic(*dynamic, c.source);
  if (const json* modules = f.find("modules_in_block_to_quantize"))
    c.modules_in_block = parse_modules_in_block(*modules, c.source);
  return c;
}

std::optional<GptqConfig> read_gptq_config(const std::filesystem::path& directory) {
  const std::filesystem::path config_path = directory / "config.json";
  if (std::filesystem::exists(config_path)) {
    const json root =
        io_detail::parse_json_strict(read_text_file(config_path), config_path.string());
    const auto it = root.is_object() ? root.find("quantization_config") : root.end();
    if (it != root.end() && !it->is_null()) {
      const std::string where = str(config_path.string(), " (quantization_config)");
      require(it->is_object(), where, ": must be an object");
      const auto method = it->find("quant_method");
      require(method != it->end() && method->is_string(), where, ": missing 'quant_method'");
      require(lower(method->get<std::string>()) == "gptq", where, ": quant_method '",
              method->get<std::string>(), "' is not supported (qshard reads gptq)");
      return parse_gptq_config(it->dump(), where);
    }
  }
  const std::filesystem::path legacy = directory / "quantize_config.json";
  if (std::filesystem::exists(legacy))
    return parse_gptq_config(read_text_file(legacy), legacy.string());
  return std::nullopt;
}

}  // namespace qshard
