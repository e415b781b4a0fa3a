// The checkpoint's header attributes (see io/job_record.hpp and docs/CHECKPOINT.md).
#include "qshard/io/job_record.hpp"

#include <nlohmann/json.hpp>

#include "qshard/core/error.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard {

void JobRecord::write(const h5::Group& root) const {
  root.set_attr("qshard_version", qshard_version);
  root.set_attr("git_commit", git_commit);
  root.set_attr("command_line", command_line);
  root.set_attr("job_config", job_config);
  root.set_attr("model_config", model_config);
  root.set_attr("model_source", model_source);
  root.set_attr("ranks", ranks);
  root.set_attr("backend", backend);
  root.set_attr("calibration_seed", calibration_seed);
  root.set_attr("calibration_hash", calibration_hash);
  root.set_attr("calibration_samples", calibration_samples);
  root.set_attr("calibration_seq_len", calibration_seq_len);
  root.set_attr("created_utc", created_utc);
  root.set_attr("seconds", seconds);
  root.set_attr("layers", layers);
  root.set_attr("objective_gptq", std::span<const double>(objective_gptq));
  root.set_attr("objective_rtn", std::span<const double>(objective_rtn));
  if (!layer_block_starts.empty())
    root.set_attr("layer_block_starts", std::span<const std::int64_t>(layer_block_starts));
}

JobRecord JobRecord::read(const Checkpoint& checkpoint) { return read(checkpoint.file().root()); }

JobRecord JobRecord::read(const h5::Group& root) {
  JobRecord r;
  const auto text = [&](const char* key, std::string& value) {
    if (root.has_attr(key)) value = root.attr_string(key);
  };
  const auto integer = [&](const char* key, std::int64_t& value) {
    if (root.has_attr(key)) value = root.attr_int(key);
  };
  const auto doubles = [&](const char* key, std::vector<double>& values) {
    if (root.has_attr(key)) values = root.attr_doubles(key);
  };
  text("qshard_version", r.qshard_version);
  text("git_commit", r.git_commit);
  text("command_line", r.command_line);
  text("job_config", r.job_config);
  text("model_config", r.model_config);
  text("model_source", r.model_source);
  integer("ranks", r.ranks);
  text("backend", r.backend);
  integer("calibration_seed", r.calibration_seed);
  text("calibration_hash", r.calibration_hash);
  integer("calibration_samples", r.calibration_samples);
  integer("calibration_seq_len", r.calibration_seq_len);
  text("created_utc", r.created_utc);
  if (root.has_attr("seconds")) r.seconds = root.attr_double("seconds");
  integer("layers", r.layers);
  doubles("objective_gptq", r.objective_gptq);
  doubles("objective_rtn", r.objective_rtn);
  if (root.has_attr("layer_block_starts"))
    r.layer_block_starts = root.attr_ints("layer_block_starts");
  return r;
}

RecordedSettings JobRecord::settings(const std::filesystem::path& file) const {
  using nlohmann::json;
  const std::string where = str(file.string(), " @job_config");
  require(!job_config.empty(), where, ": missing (not a checkpoint written by qshard-quantize)");
  json j;
  try {
    j = json::parse(job_config);
  } catch (const json::exception& e) {
    throw Error(str(where, ": invalid JSON: ", e.what()));
  }
  require(j.is_object(), where, ": not a JSON object");
  const auto field = [&](const char* key) -> const json& {
    require(j.contains(key), where, ": missing '", key, "'");
    return j.at(key);
  };
  const auto boolean = [&](const char* key) {
    require(field(key).is_boolean(), where, ": '", key, "' must be true or false");
    return field(key).get<bool>();
  };
  const auto integer = [&](const char* key) {
    require(field(key).is_number_integer(), where, ": '", key, "' must be an integer");
    return field(key).get<std::int64_t>();
  };
  const auto string = [&](const char* key) {
    require(field(key).is_string(), where, ": '", key, "' must be a string");
    return field(key).get<std::string>();
  };
  RecordedSettings s;
  s.method = string("method");
  s.bits = static_cast<int>(integer("bits"));
  s.group_size = integer("group_size");
  s.sym = boolean("sym");
  s.act_order = boolean("act_order");
  s.static_groups = boolean("static_groups");
  s.true_sequential = boolean("true_sequential");
  require(field("damp_percent").is_number(), where, ": 'damp_percent' must be a number");
  s.damp_percent = field("damp_percent").get<double>();
  s.model = string("model");
  require(field("model_seed").is_number_unsigned(), where,
          ": 'model_seed' must be a non-negative integer");
  s.model_seed = field("model_seed").get<std::uint64_t>();
  return s;
}

}  // namespace qshard
