#include "qshard/pipeline/job_options.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "qshard/core/app.hpp"
#include "qshard/core/error.hpp"
#include "qshard/core/utf8.hpp"
#include "qshard/model/synthetic_source.hpp"

namespace qshard {
namespace po = boost::program_options;
namespace {

std::vector<Linear> parse_modules(const std::string& text) {
  if (text == "all") return {std::begin(kAllLinears), std::end(kAllLinears)};
  std::vector<Linear> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto linear = parse_linear(item);
    require(linear.has_value(), "modules: unknown module '", item,
            "' (expected all, or a comma list of q,k,v,o,gate,up,down)");
    out.push_back(*linear);
  }
  require(!out.empty(), "modules: empty list");
  return out;
}

GroupScaleRule parse_rule(const std::string& text) {
  if (text == "exact") return GroupScaleRule::Exact;
  if (text == "reference") return GroupScaleRule::Reference;
  throw Error(str("group_rule: expected exact or reference (got '", text, "')"));
}

struct Raw {
  std::string modules = "all";
  std::string group_rule = "exact";
};

po::options_description describe_options(JobOptions& o, Raw& raw) {
  po::options_description d(
      str("qshard-quantize: GPTQ of a whole model over MPI ranks\n", kOptionConventions,
          "\nEvery key also works in an INI --config file (key = value; the command line wins).\n\n"
          "Options"));
  auto add = d.add_options();
  add("help,h", "print this help");
  add("config", po::value<std::string>(), "INI file of key = value lines (the command line wins)");
  std::string presets;
  for (const std::string& name : synthetic_presets())
    presets += (presets.empty() ? "" : ", ") + name;
  const std::string model_help = str("Hugging Face model directory, or synthetic:NAME (", presets,
                                     ") or synthetic:PATH/config.json");
  add("model", po::value(&o.model)->default_value(o.model), model_help.c_str());
  add("model_seed", po::value(&o.model_seed)->default_value(o.model_seed),
      "seed of synthetic weights");
  add("allow_extra_tensors", switch_value(&o.allow_extra_tensors),
      "ignore tensors of the model directory that its config.json does not account for (more "
      "layers than num_hidden_layers, unknown names, undeclared biases) instead of refusing them");
  add("calib", po::value(&o.calib)->default_value(o.calib),
      "calibration tokens: FILE.i32 (little-endian int32) or FILE.h5[:DATASET]; empty: random ids");
  add("calib_sampling", po::value(&o.calib_sampling)->default_value(o.calib_sampling),
      "rows: the file's first `samples` rows of seq_len tokens; random: seeded windows of the "
      "stream");
  add("samples", po::value(&o.samples)->default_value(o.samples), "calibration samples");
  add("seq_len", po::value(&o.seq_len)->default_value(o.seq_len), "tokens per calibration sample");
  add("seed", po::value(&o.seed)->default_value(o.seed), "calibration sampling seed");
  add("batch_samples", po::value(&o.batch_samples)->default_value(o.batch_samples),
      "samples per forward unit (results never depend on the rank count)");
  add("method", po::value(&o.method)->default_value(o.method), "gptq or rtn (round-to-nearest)");
  add("bits", po::value(&o.gptq.quant.bits)->default_value(o.gptq.quant.bits), "2, 3, 4 or 8");
  add("group_size", po::value(&o.gptq.quant.group_size)->default_value(o.gptq.quant.group_size),
      "-1 (one group per row) or a positive size");
  add("sym", switch_value(&o.gptq.quant.sym), "symmetric quantization");
  add("mse", switch_value(&o.gptq.quant.mse), "grid search of the clipping range");
  add("damp_percent", po::value(&o.gptq.damp_percent)->default_value(o.gptq.damp_percent),
      "damping as a fraction of mean(diag H)");
  add("block_size", po::value(&o.gptq.block_size)->default_value(o.gptq.block_size),
      "GPTQ lazy batch size in columns");
  add("act_order", switch_value(&o.gptq.act_order),
      "desc_act: quantize columns by descending diag(H), record g_idx");
  add("static_groups", switch_value(&o.gptq.static_groups),
      "group scales from the original weights before the solve");
  add("group_rule", po::value(&raw.group_rule)->default_value(raw.group_rule),
      "exact (block-size independent) or reference (as the public GPTQ code)");
  add("max_damp_steps", po::value(&o.gptq.max_damp_steps)->default_value(o.gptq.max_damp_steps),
      "how often damping is raised x10 when H is not positive definite");
  add("true_sequential", switch_value(&o.true_sequential),
      "solve (q,k,v) -> o -> (gate,up) -> down, each on inputs through the quantized modules");
  add("modules", po::value(&raw.modules)->default_value(raw.modules),
      "modules to quantize: all, or a comma list of q,k,v,o,gate,up,down");
  add("moe_calibration", po::value(&o.moe_calibration)->default_value(o.moe_calibration),
      "mixture-of-experts models: routed (an expert's Hessians from the tokens routed to it) or "
      "all (from every calibration token, for the Hessians only: the layer's output still uses "
      "the routing)");
  add("expert_min_tokens", po::value(&o.expert_min_tokens)->default_value(o.expert_min_tokens),
      "warn about each expert whose Hessian saw fewer calibration tokens (one that saw none is "
      "quantized round-to-nearest)");
  add("expert_batch", po::value(&o.expert_batch)->default_value(o.expert_batch),
      "mixture-of-experts models: the routed experts whose partial Hessians are accumulated in one "
      "forward of the calibration units (0: all of a layer's); each rank then holds that many "
      "experts' partial Hessians at a time, at one more forward per batch (results unchanged)");
  add("layer_groups", po::value(&o.layer_groups)->default_value(o.layer_groups),
      "layer-parallel mode: split the ranks into this many equal contiguous groups and the layers "
      "into as many contiguous blocks (balanced by parameters); after one floating-point forward "
      "that hands each group its block's inputs, all groups quantize their blocks at once. Unlike "
      "the sequential job (1), a block's first layer sees the previous block's floating-point "
      "outputs, not its quantized ones (docs/QUALITY.md measures the cost). The rank count must "
      "be a multiple; the parts directory must be visible to every group's first rank");
  add("out", po::value(&o.out)->default_value(o.out),
      "HDF5 checkpoint to write (written as OUT.tmp and renamed when complete)");
  add("force", switch_value(&o.force),
      "replace an existing OUT (when the new checkpoint is complete); never an input of the job");
  add("resume", switch_value(&o.resume), "continue an interrupted job from its parts_dir");
  add("parts_dir", po::value(&o.parts_dir)->default_value(""),
      "where the finished layers wait until the checkpoint is assembled (default OUT.parts; "
      "e.g. node-local scratch when OUT is on a shared file system: both hold the quantized "
      "layers once at the end)");
  add("backend", po::value(&o.backend)->default_value(o.backend), "cpu, cuda or auto");
  add("collectives", po::value(&o.collectives)->default_value(o.collectives),
      "auto (NCCL with the cuda backend, one rank per GPU), nccl, or mpi (host MPI only; ranks "
      "of a node may then share GPUs: for tests on one GPU)");
  add("tile_rows", po::value(&o.tile_rows)->default_value(o.tile_rows),
      "rows per solve work unit, spread over the ranks");
  add("threads", po::value(&o.threads)->default_value(o.threads),
      "BLAS and host worker threads per rank");
  add("collective_timeout", po::value(&o.collective_timeout)->default_value(o.collective_timeout),
      "seconds a rank may wait in one host MPI collective (another rank stopped or hung) before "
      "it ends the job, naming the layer and the stage; 0: wait forever (NCCL has its own)");
  add("stop_after_layers", po::value(&o.stop_after_layers)->default_value(o.stop_after_layers),
      "testing: stop (exit 3, as if killed) after this many layers");
  add("quiet", switch_value(&o.quiet), "no progress lines (as --progress none)");
  add("progress",
      po::value(&o.progress)->default_value(o.progress)->notifier([](const std::string& v) {
        require(v == "lines" || v == "bar" || v == "none",
                "progress: expected lines, bar or none (got '", v, "')");
      }),
      "rank 0's report: lines (one per layer, and a status line at least every 10 s of a long "
      "stage), bar (redrawn in place, only when stdout is a terminal: lines otherwise) or none");
  return d;
}

}  // namespace

void JobOptions::validate() const {
  gptq.validate();
  require(method == "gptq" || method == "rtn", "method: expected gptq or rtn (got '", method, "')");
  require(samples > 0, "samples must be positive (got ", samples, ")");
  require(seq_len > 1, "seq_len must be at least 2 (got ", seq_len, ")");
  require(batch_samples > 0, "batch_samples must be positive (got ", batch_samples, ")");
  require(tile_rows > 0, "tile_rows must be positive (got ", tile_rows, ")");
  require(threads > 0, "threads must be positive (got ", threads, ")");
  require(collective_timeout >= 0, "collective_timeout must be 0 (off) or positive seconds (got ",
          collective_timeout, ")");
  require(calib_sampling == "rows" || calib_sampling == "random",
          "calib_sampling: expected rows or random (got '", calib_sampling, "')");
  require(backend == "cpu" || backend == "cuda" || backend == "auto",
          "backend: expected cpu, cuda or auto (got '", backend, "')");
  require(collectives == "auto" || collectives == "nccl" || collectives == "mpi",
          "collectives: expected auto, nccl or mpi (got '", collectives, "')");
  require(!out.empty(), "out: empty path");
  require(!modules.empty(), "modules: empty list");
  require(moe_calibration == "routed" || moe_calibration == "all",
          "moe_calibration: expected routed or all (got '", moe_calibration, "')");
  require(expert_batch >= 0, "expert_batch must be 0 (all experts) or positive (got ", expert_batch,
          ")");
  require(layer_groups >= 1, "layer_groups must be at least 1 (got ", layer_groups, ")");
  require(expert_min_tokens >= 0, "expert_min_tokens must be 0 or positive (got ",
          expert_min_tokens, ")");
  // The settings are recorded as JSON (job.json, @job_config), which holds only UTF-8 text.
  const std::pair<const char*, const std::string*> recorded[] = {
      {"model", &model}, {"calib", &calib}, {"out", &out}};
  for (const auto& [key, value] : recorded) {
    require(is_valid_utf8(*value), key,
            ": not valid UTF-8 (qshard records its settings as JSON, which holds UTF-8 text only: "
            "rename the file or directory)");
  }
}

namespace {
nlohmann::json result_fields(const JobOptions& o) {
  nlohmann::json j;
  j["model"] = o.model;
  j["model_seed"] = o.model_seed;
  j["calib"] = o.calib;
  j["calib_sampling"] = o.calib_sampling;
  j["samples"] = o.samples;
  j["seq_len"] = o.seq_len;
  j["seed"] = o.seed;
  j["batch_samples"] = o.batch_samples;
  j["method"] = o.method;
  j["bits"] = o.gptq.quant.bits;
  j["group_size"] = o.gptq.quant.group_size;
  j["sym"] = o.gptq.quant.sym;
  j["mse"] = o.gptq.quant.mse;
  j["damp_percent"] = o.gptq.damp_percent;
  j["block_size"] = o.gptq.block_size;
  j["act_order"] = o.gptq.act_order;
  j["static_groups"] = o.gptq.static_groups;
  j["group_rule"] = o.gptq.group_rule == GroupScaleRule::Exact ? "exact" : "reference";
  j["max_damp_steps"] = o.gptq.max_damp_steps;
  j["true_sequential"] = o.true_sequential;
  std::vector<std::string> modules;
  for (const Linear l : o.modules) modules.emplace_back(linear_name(l));
  j["modules"] = modules;
  j["tile_rows"] = o.tile_rows;
  j["backend"] = o.backend;
  j["moe_calibration"] = o.moe_calibration;
  if (o.layer_groups != 1) j["layer_groups"] = o.layer_groups;  // absent: the sequential job
  return j;
}
}  // namespace

std::string JobOptions::result_key() const { return result_fields(*this).dump(); }

std::string JobOptions::to_json() const {
  nlohmann::json j = result_fields(*this);
  j["out"] = out;
  j["resume"] = resume;
  j["collectives"] = collectives;
  j["threads"] = threads;
  j["allow_extra_tensors"] = allow_extra_tensors;
  j["collective_timeout"] = collective_timeout;
  j["expert_min_tokens"] = expert_min_tokens;
  j["expert_batch"] = expert_batch;
  return j.dump(2);
}

ParsedOptions parse_job_options(const std::vector<std::string>& args) {
  JobOptions options;
  Raw raw;
  const po::options_description description = describe_options(options, raw);
  std::ostringstream help;
  help << description;
  if (!parse_command_line(description, args)) return {std::nullopt, help.str()};
  options.modules = parse_modules(raw.modules);
  options.gptq.group_rule = parse_rule(raw.group_rule);
  options.validate();
  return {options, help.str()};
}

ParsedOptions parse_job_options(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_job_options(args);
}

}  // namespace qshard
