#include "qshard/sweep/sweep_run.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "qshard/core/error.hpp"
#include "qshard/core/fnv1a.hpp"
#include "qshard/eval/metrics.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/job_record.hpp"
#include "qshard/io/tokens.hpp"
#include "qshard/model/causal_lm.hpp"
#include "qshard/model/checkpoint_source.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/pipeline/job_options.hpp"
#include "qshard/sweep/checkpoint_stats.hpp"
#include "qshard/sweep/process.hpp"
#include "qshard/sweep/results.hpp"

namespace qshard {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// "32" → 32, "0.01" → 0.01, "gptq" → "gptq": grid values typed as they read.
nlohmann::json typed_value(const std::string& text) {
  std::size_t used = 0;
  try {
    const long long integer = std::stoll(text, &used);
    if (used == text.size()) return integer;
  } catch (const std::exception&) {
  }
  try {
    const double real = std::stod(text, &used);
    if (used == text.size()) return real;
  } catch (const std::exception&) {
  }
  return text;
}

fs::path resolved_out_dir(const SweepSpec& spec, const PointRunOptions& options) {
  return options.out_dir.empty() ? spec.out_dir : options.out_dir;
}

TokenSet eval_tokens(const SweepSpec& spec, std::int64_t vocab) {
  TokenSet tokens = read_tokens(spec.eval_tokens, spec.eval_seq_len);
  require(tokens.cols == spec.eval_seq_len, spec.file.string(), ": eval_tokens ", spec.eval_tokens,
          " has rows of ", tokens.cols, " tokens, eval_seq_len is ", spec.eval_seq_len);
  if (spec.eval_rows > 0) {
    require(spec.eval_rows <= tokens.rows, spec.file.string(), ": eval_rows ", spec.eval_rows,
            " but ", spec.eval_tokens, " has ", tokens.rows, " rows");
    tokens.rows = spec.eval_rows;
    tokens.ids.resize(static_cast<std::size_t>(tokens.rows * tokens.cols));
  }
  check_vocab(tokens, vocab, spec.eval_tokens);
  return tokens;
}

}  // namespace

fs::path point_checkpoint(const fs::path& out_dir, std::int64_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "point-%04lld.h5", static_cast<long long>(index));
  return out_dir / name;
}

std::vector<std::string> quantize_command(const SweepSpec& spec, const SweepPoint& point,
                                          const PointRunOptions& options) {
  std::vector<std::string> command = options.launcher;
  command.push_back(options.quantize_bin.string());
  command.push_back("--config=" + spec.base.string());
  // --key=value: boolean keys (act_order = 0,1) take their value only in this form.
  for (const auto& [key, value] : point.settings) command.push_back("--" + key + "=" + value);
  const fs::path checkpoint = point_checkpoint(resolved_out_dir(spec, options), point.index);
  command.push_back("--out=" + checkpoint.string());
  // The point's checkpoint is the sweep's own file: a re-run task recomputes it.
  command.push_back("--force");
  // A requeued task continues the interrupted quantization.
  if (fs::exists(checkpoint.string() + ".parts")) command.push_back("--resume");
  command.insert(command.end(), options.extra_args.begin(), options.extra_args.end());
  return command;
}

void check_point_options(const SweepSpec& spec, const SweepPoint& point) {
  std::vector<std::string> args = {"--config=" + spec.base.string()};
  for (const auto& [key, value] : point.settings) args.push_back("--" + key + "=" + value);
  args.push_back("--out=" + point_checkpoint(spec.out_dir, point.index).string());
  try {
    parse_job_options(args);
  } catch (const Error& e) {
    throw Error(
        str(spec.file.string(), ": point ", point.index, " (", point.describe(), "): ", e.what()));
  }
}

nlohmann::json evaluate_point(const SweepSpec& spec, const SweepPoint& point,
                              const fs::path& checkpoint, double quantize_seconds,
                              const LayerRunner& runner) {
  const auto start = Clock::now();
  const Checkpoint stored(checkpoint);
  const JobRecord job = JobRecord::read(stored);
  const RecordedSettings recorded = job.settings(checkpoint);
  const std::unique_ptr<WeightSource> original = open_model(recorded.model, recorded.model_seed);
  const std::unique_ptr<WeightSource> quantized = open_checkpoint_model(checkpoint);
  const TokenSet tokens = eval_tokens(spec, original->config().vocab_size);
  CausalLm original_lm(*original);
  CausalLm quantized_lm(*quantized);
  if (runner) {
    original_lm.set_layer_runner(runner);
    quantized_lm.set_layer_runner(runner);
  }
  const ComparisonResult comparison = compare_models(original_lm, quantized_lm, tokens);
  const CheckpointStats stats = checkpoint_stats(checkpoint);

  nlohmann::json record;
  record["index"] = point.index;
  nlohmann::json settings = nlohmann::json::object();
  for (const auto& [key, value] : point.settings) settings[key] = typed_value(value);
  record["settings"] = settings;
  record["method"] = recorded.method;
  record["bits"] = recorded.bits;
  record["group_size"] = recorded.group_size;
  record["act_order"] = recorded.act_order;
  record["perplexity"] = comparison.model.perplexity;
  record["fp32_perplexity"] = comparison.reference.perplexity;
  record["kl"] = comparison.mean_kl;
  record["top1"] = comparison.top1_agreement;
  record["eval_predictions"] = comparison.model.predictions;
  record["model_bytes"] = stats.model_bytes;
  record["quantized_bytes"] = stats.quantized_bytes;
  record["quantized_weights"] = stats.quantized_weights;
  record["bits_per_weight"] = stats.bits_per_weight();
  record["time_s"] = quantize_seconds;
  record["eval_time_s"] = seconds_since(start);
  record["ranks"] = job.ranks;
  record["backend"] = job.backend;
  record["commit"] = job.git_commit;
  record["seed"] = job.calibration_seed;
  record["calibration_hash"] = job.calibration_hash;
  record["checkpoint_hash"] = hex64(hash_quantized_tensors(checkpoint));
  record["checkpoint"] = checkpoint.string();
  record["model"] = recorded.model;
  record["eval_tokens"] = spec.eval_tokens;
  record["sweep"] = spec.file.string();
  for (const char* variable : {"SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID"}) {
    if (const char* value = std::getenv(variable)) {
      record["slurm_job_id"] = value;
      break;
    }
  }
  return record;
}

nlohmann::json run_point(const SweepSpec& spec, std::int64_t index, const PointRunOptions& options,
                         std::ostream& log) {
  const SweepPoint point = sweep_point(spec, index);
  check_point_options(spec, point);
  const fs::path out_dir = resolved_out_dir(spec, options);
  fs::create_directories(out_dir);
  const fs::path checkpoint = point_checkpoint(out_dir, index);
  const std::vector<std::string> command = quantize_command(spec, point, options);
  log << "qshard-sweep: point " << index << " of " << spec.point_count() << ": " << point.describe()
      << "\n  " << shell_quote(command) << std::endl;
  const auto start = Clock::now();
  const int status = run_process(command);
  const double seconds = seconds_since(start);
  require(status == 0, "point ", index, " (", point.describe(),
          "): qshard-quantize exited with status ", status);
  require(fs::exists(checkpoint), "point ", index, ": qshard-quantize succeeded but wrote no ",
          checkpoint.string());
  const nlohmann::json record =
      evaluate_point(spec, point, checkpoint, seconds, options.eval_runner);
  const fs::path results = out_dir / "results.jsonl";
  append_result_line(results, record);
  log << std::fixed << std::setprecision(4) << "qshard-sweep: point " << index << ": perplexity "
      << record["perplexity"].get<double>() << " (fp32 " << record["fp32_perplexity"].get<double>()
      << "), KL " << record["kl"].get<double>() << ", top-1 "
      << 100.0 * record["top1"].get<double>() << " %, " << record["bits_per_weight"].get<double>()
      << " bits/weight, hash " << record["checkpoint_hash"].get<std::string>() << " -> "
      << results.string() << std::endl;
  return record;
}

}  // namespace qshard
