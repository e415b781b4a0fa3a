#include "qshard/eval/eval_cli.hpp"

#include <boost/program_options.hpp>
#include <sstream>

#include "qshard/core/app.hpp"
#include "qshard/core/error.hpp"

namespace qshard {
namespace po = boost::program_options;
namespace {

po::options_description describe_options(EvalOptions& o) {
  po::options_description d(
      str("qshard-eval: perplexity of a model; KL divergence and top-1 agreement against a "
          "reference\n",
          kOptionConventions, "\n\nOptions"));
  auto add = d.add_options();
  add("help,h", "print this help");
  add("model", po::value(&o.model),
      "model to evaluate: Hugging Face directory or synthetic:NAME (also the reference of "
      "--checkpoint and --rtn_bits when no --reference is given)");
  add("reference", po::value(&o.reference),
      "original model to compare with (KL divergence, top-1 agreement)");
  add("checkpoint", po::value(&o.checkpoint), "qshard HDF5 checkpoint to evaluate");
  add("tokens", po::value(&o.tokens), "evaluation tokens: FILE.i32 or FILE.h5[:DATASET]");
  add("seq_len", po::value(&o.seq_len), "tokens per row of the token file");
  add("window", po::value(&o.window)->default_value(o.window),
      "non-overlapping windows of this length (-1: whole rows)");
  add("max_rows", po::value(&o.max_rows)->default_value(o.max_rows),
      "evaluate only the first rows");
  add("rtn_bits", po::value(&o.rtn_bits)->default_value(o.rtn_bits),
      "evaluate --model quantized in memory with RTN at these bits");
  add("rtn_group_size", po::value(&o.rtn_group_size)->default_value(o.rtn_group_size),
      "group size of --rtn_bits (-1: one group per row)");
  add("json", switch_value(&o.json),
      "print one JSON line (top1 as a fraction) instead of the text (top-1 as a percentage)");
  add("logits_out", po::value(&o.logits_out)->value_name("FILE.f32"),
      "write the evaluated model's logits as raw little-endian float32 [rows * positions, vocab]: "
      "every position of each evaluated row (or window), in order");
  add("allow_extra_tensors", switch_value(&o.allow_extra_tensors),
      "ignore tensors of a model directory that its config.json does not account for");
  add("backend", po::value(&o.backend)->default_value(o.backend),
      "where the decoder layers run: cpu, cuda or auto (GPU 0 when the build has CUDA and a GPU "
      "is visible, else the CPU; the CPU gives the reference figures)");
  add("threads", po::value(&o.threads)->default_value(o.threads),
      "BLAS threads (as qshard-quantize's threads); 0: OpenBLAS's own choice "
      "(OPENBLAS_NUM_THREADS, else every core)");
  return d;
}

}  // namespace

ParsedEvalOptions parse_eval_options(const std::vector<std::string>& args) {
  EvalOptions options;
  const po::options_description description = describe_options(options);
  std::ostringstream help;
  help << description << '\n';
  if (!parse_command_line(description, args)) return {std::nullopt, help.str()};
  require(options.backend == "cpu" || options.backend == "cuda" || options.backend == "auto",
          "backend: expected cpu, cuda or auto (got '", options.backend, "')");
  require(options.threads >= 0, "threads must be 0 (OpenBLAS's choice) or positive (got ",
          options.threads, ")");
  return {options, help.str()};
}

}  // namespace qshard
