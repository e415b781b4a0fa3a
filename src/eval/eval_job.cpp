#include "qshard/eval/eval_job.hpp"

#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>

#include "qshard/core/error.hpp"
#include "qshard/eval/logits_file.hpp"
#include "qshard/model/checkpoint_source.hpp"
#include "qshard/model/override_source.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {
namespace {

// Every decoder linear of `source` quantized with RTN and dequantized, in memory.
std::unique_ptr<WeightSource> rtn_model(const WeightSource& source, const QuantConfig& config) {
  std::map<std::string, MatrixF> replaced;
  const ModelConfig& model = source.config();
  for (std::int64_t l = 0; l < model.num_hidden_layers; ++l)
    for (const ModuleId module : layer_modules(model, l)) {
      const std::string name = module_weight_name(model, l, module);
      replaced[name] = quantize_rtn(source.load(name), config).dequantize();
    }
  return with_overrides(source, std::move(replaced));
}

}  // namespace

EvalReport run_eval(const EvalOptions& o, const LayerRunner& runner) {
  require(!o.tokens.empty(), "give the evaluation tokens with --tokens");
  require(o.seq_len > 1, "give --seq-len (tokens per row of the token file, at least 2)");
  require(!o.model.empty() || !o.checkpoint.empty(), "give --model and/or --checkpoint");
  require(o.checkpoint.empty() || o.rtn_bits == 0,
          "--checkpoint and --rtn-bits exclude each other");
  require(o.rtn_bits == 0 || !o.model.empty(), "--rtn-bits quantizes --model: give it");
  require(o.reference.empty() || o.checkpoint.empty() || o.model.empty(),
          "--checkpoint with both --model and --reference: give the original model once");
  TokenSet tokens = read_tokens(o.tokens, o.seq_len);
  // Rows are scored whole: an HDF5 dataset's, or those a raw file's name declares
  // (eval_256x256.i32); a raw file without one is cut into rows of seq_len.
  const std::int64_t row_length =
      tokens.cols != o.seq_len ? tokens.cols : row_length_in_name(o.tokens).value_or(o.seq_len);
  require(row_length == o.seq_len, "--tokens ", o.tokens, " has rows of ", row_length,
          " tokens, but --seq-len is ", o.seq_len, ": give --seq-len ", row_length,
          " (--window scores shorter windows within each row)");
  if (o.max_rows > 0 && o.max_rows < tokens.rows) {
    tokens.rows = o.max_rows;
    tokens.ids.resize(static_cast<std::size_t>(tokens.rows * tokens.cols));
  }
  EvalReport report;
  const ModelOpenOptions open{.allow_extra_tensors = o.allow_extra_tensors};
  std::unique_ptr<WeightSource> model = o.model.empty() ? nullptr : open_model(o.model, 0, open);
  std::unique_ptr<WeightSource> reference =
      o.reference.empty() ? nullptr : open_model(o.reference, 0, open);
  std::unique_ptr<WeightSource> evaluated;
  if (!o.checkpoint.empty()) {
    evaluated = open_checkpoint_model(o.checkpoint);
    report.description = "checkpoint " + o.checkpoint;
  } else if (o.rtn_bits > 0) {
    QuantConfig q;
    q.bits = o.rtn_bits;
    q.group_size = o.rtn_group_size;
    q.validate();
    evaluated = rtn_model(*model, q);
    report.description = str("RTN ", o.rtn_bits, "-bit group ", o.rtn_group_size, " of ", o.model);
  } else {
    report.description = o.model;
  }
  // The source the evaluated model reads: the checkpoint, the RTN overrides, or `model` itself.
  const WeightSource& evaluated_source = evaluated ? *evaluated : *model;
  const WeightSource* reference_source = reference   ? reference.get()
                                         : evaluated ? model.get()
                                                     : nullptr;
  const std::int64_t positions = o.window > 0 ? std::min(o.window, o.seq_len) : o.seq_len;
  require(positions <= evaluated_source.config().max_position_embeddings, "seq_len ", positions,
          " exceeds the model's max_position_embeddings ",
          evaluated_source.config().max_position_embeddings);
  CausalLm lm(evaluated_source);
  if (runner) lm.set_layer_runner(runner);
  std::optional<LogitsFile> logits;
  LogitsSink sink;
  if (!o.logits_out.empty()) {
    logits.emplace(o.logits_out);
    sink = [&logits](const MatrixF& batch) { logits->append(batch); };
  }
  if (reference_source == nullptr) {
    report.evaluated = perplexity(lm, tokens, o.window, sink);
  } else {
    report.reference = reference ? o.reference : o.model;
    CausalLm reference_lm(*reference_source);
    if (runner) reference_lm.set_layer_runner(runner);
    report.comparison = compare_models(reference_lm, lm, tokens, o.window, sink);
    report.evaluated = report.comparison->model;
  }
  if (logits) {
    logits->commit();
    report.logits_out = o.logits_out;
    report.logits_rows = logits->rows();
    report.logits_vocab = logits->vocab();
  }
  return report;
}

void print_report(const EvalReport& r, bool json, std::ostream& out) {
  if (json) {
    nlohmann::json j;
    j["evaluated"] = r.description;
    j["perplexity"] = r.evaluated.perplexity;
    j["mean_nll"] = r.evaluated.mean_nll;
    j["predictions"] = r.evaluated.predictions;
    if (r.comparison) {
      j["reference"] = r.reference;
      j["reference_perplexity"] = r.comparison->reference.perplexity;
      j["kl"] = r.comparison->mean_kl;
      j["top1"] = r.comparison->top1_agreement;
    }
    if (!r.logits_out.empty()) {
      j["logits_out"] = r.logits_out;
      j["logits_shape"] = {r.logits_rows, r.logits_vocab};
    }
    out << j.dump() << '\n';
    return;
  }
  out << std::fixed << std::setprecision(4) << "evaluated            " << r.description << '\n'
      << "perplexity           " << r.evaluated.perplexity << "  (mean NLL " << r.evaluated.mean_nll
      << ", " << r.evaluated.predictions << " predictions)\n";
  if (r.comparison) {
    out << "reference            " << r.reference << '\n'
        << "reference perplexity " << r.comparison->reference.perplexity << '\n'
        << "mean KL divergence   " << std::setprecision(6) << r.comparison->mean_kl << " nats\n"
        << "top-1 agreement      " << std::setprecision(4) << 100.0 * r.comparison->top1_agreement
        << " %\n";
  }
  if (!r.logits_out.empty())
    out << "logits               " << r.logits_out << "  (float32 [" << r.logits_rows << ", "
        << r.logits_vocab << "])\n";
}

}  // namespace qshard
