#pragma once
// Quality of a (quantized) model: perplexity, and KL divergence / top-1 agreement against a
// reference.
#include <cstdint>
#include <functional>

#include "qshard/io/tokens.hpp"
#include "qshard/model/causal_lm.hpp"

namespace qshard {

struct PerplexityResult {
  double mean_nll = 0.0;
  double perplexity = 0.0;
  std::int64_t predictions = 0;
};

// Receives the evaluated model's logits batch by batch, in row (window) order: [rows * positions,
// vocab] for every position of each evaluated row or window.
using LogitsSink = std::function<void(const MatrixF& logits)>;

// Each row of `tokens` is cut into non-overlapping windows of `window` tokens (window <= cols;
// -1: the whole row); each window scores its window-1 next-token predictions.
PerplexityResult perplexity(const CausalLm& model, const TokenSet& tokens, std::int64_t window = -1,
                            const LogitsSink& sink = {});

struct ComparisonResult {
  double mean_kl = 0.0;         // mean over predictions of KL(P_reference || P_model), nats
  double top1_agreement = 0.0;  // fraction of predictions whose argmax agrees
  PerplexityResult reference;
  PerplexityResult model;
};
// `sink` receives the logits of `model` (not of the reference).
ComparisonResult compare_models(const CausalLm& reference, const CausalLm& model,
                                const TokenSet& tokens, std::int64_t window = -1,
                                const LogitsSink& sink = {});

}  // namespace qshard
