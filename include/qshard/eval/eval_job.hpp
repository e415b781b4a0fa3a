#pragma once
// qshard-eval: perplexity of a model (a Hugging Face directory, a synthetic model, a qshard
// checkpoint, or a model quantized with RTN in memory), and KL divergence / top-1 agreement
// against a reference model.
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "qshard/eval/metrics.hpp"

namespace qshard {

// What is evaluated: the checkpoint when given, else `model` (quantized with RTN when rtn_bits >
// 0). What it is compared with: `reference` when given, else `model` when the evaluated model is
// derived from it (a checkpoint or RTN); without either only the perplexity is reported.
struct EvalOptions {
  std::string model;       // Hugging Face directory or synthetic:NAME
  std::string reference;   // the original model to compare with
  std::string checkpoint;  // a qshard checkpoint to evaluate
  std::string tokens;      // evaluation token file
  std::int64_t seq_len = 0;
  std::int64_t window = -1;
  std::int64_t max_rows = -1;
  int rtn_bits = 0;  // > 0: evaluate `model` quantized with RTN at these bits
  std::int64_t rtn_group_size = -1;
  bool json = false;
  std::string logits_out;        // raw float32 logits of the evaluated model, when given
  std::string backend = "auto";  // cpu, cuda or auto: where the apps run the decoder layers
  int threads = 0;               // BLAS threads; 0: OpenBLAS's own choice
  // Ignore tensors of a model directory that its config does not account for.
  bool allow_extra_tensors = false;
};

struct EvalReport {
  PerplexityResult evaluated;
  std::optional<ComparisonResult> comparison;  // when a reference is available
  std::string description;
  std::string reference;         // what the comparison is against
  std::string logits_out;        // the logits file written, if any
  std::int64_t logits_rows = 0;  // its shape: [logits_rows, logits_vocab]
  std::int64_t logits_vocab = 0;
};

// `runner`, when set, forwards the decoder layers (e.g. on a GPU backend); else the CPU forward.
EvalReport run_eval(const EvalOptions& options, const LayerRunner& runner = {});
void print_report(const EvalReport& report, bool json, std::ostream& out);

}  // namespace qshard
