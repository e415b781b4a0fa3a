#include "qshard/eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "qshard/core/error.hpp"
#include "qshard/core/parallel.hpp"

namespace qshard {
namespace {

// log-softmax of one row of logits, in double.
void log_softmax(const float* logits, std::int64_t n, std::vector<double>& out) {
  out.resize(static_cast<std::size_t>(n));
  double max_value = -INFINITY;
  for (std::int64_t i = 0; i < n; ++i)
    max_value = std::max(max_value, static_cast<double>(logits[i]));
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i)
    total += std::exp(static_cast<double>(logits[i]) - max_value);
  const double log_total = max_value + std::log(total);
  for (std::int64_t i = 0; i < n; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<double>(logits[i]) - log_total;
}

std::int64_t argmax(const std::vector<double>& v) {
  return std::max_element(v.begin(), v.end()) - v.begin();
}

// Windows of `window` tokens: [rows * (cols / window), window] (a trailing partial window is
// dropped).
TokenSet windows_of(const TokenSet& tokens, std::int64_t window) {
  if (window < 0 || window == tokens.cols) return tokens;
  require(window >= 2 && window <= tokens.cols, "evaluation window ", window, " must be in [2, ",
          tokens.cols, "]");
  const std::int64_t per_row = tokens.cols / window;
  TokenSet out{tokens.rows * per_row, window, {}};
  for (std::int64_t r = 0; r < tokens.rows; ++r)
    for (std::int64_t w = 0; w < per_row; ++w) {
      const auto row = tokens.row(r).subspan(static_cast<std::size_t>(w * window),
                                             static_cast<std::size_t>(window));
      out.ids.insert(out.ids.end(), row.begin(), row.end());
    }
  return out;
}

constexpr std::int64_t kRowsPerBatch = 8;

// What one next-token prediction contributes; summed in position order by the caller, so the
// results do not depend on the number of threads that computed them.
struct PositionScore {
  double nll_model = 0.0;
  double nll_reference = 0.0;
  double kl = 0.0;  // KL(P_reference || P_model)
  bool agree = false;
};

int scoring_threads() {
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 64u));
}

// Scores the predictions of rows [r0, r1) of `set` from their logits (`reference` may be null),
// the positions in parallel: a log-softmax over a large vocabulary per position is the bulk of an
// evaluation's host time (49,152 tokens for SmolLM2).
std::vector<PositionScore> score_positions(const TokenSet& set, std::int64_t r0, std::int64_t r1,
                                           const MatrixF& model, const MatrixF* reference) {
  const std::int64_t per_row = set.cols - 1;
  std::vector<PositionScore> scores(
      static_cast<std::size_t>(std::max<std::int64_t>(0, (r1 - r0) * per_row)));
  constexpr std::size_t kChunk = 64;
  parallel_for((scores.size() + kChunk - 1) / kChunk, scoring_threads(), [&](std::size_t chunk) {
    std::vector<double> lp_ref, lp_model;
    const std::size_t end = std::min(scores.size(), (chunk + 1) * kChunk);
    for (std::size_t i = chunk * kChunk; i < end; ++i) {
      const auto r = r0 + static_cast<std::int64_t>(i) / per_row;
      const auto t = static_cast<std::int64_t>(i) % per_row;
      const std::int64_t row = (r - r0) * set.cols + t;
      const auto next =
          static_cast<std::size_t>(set.ids[static_cast<std::size_t>(r * set.cols + t + 1)]);
      PositionScore& s = scores[i];
      log_softmax(model.data() + row * model.cols(), model.cols(), lp_model);
      s.nll_model = -lp_model[next];
      if (reference == nullptr) continue;
      log_softmax(reference->data() + row * reference->cols(), reference->cols(), lp_ref);
      double k = 0.0;
      for (std::size_t v = 0; v < lp_ref.size(); ++v)
        k += std::exp(lp_ref[v]) * (lp_ref[v] - lp_model[v]);
      s.kl = k;
      s.agree = argmax(lp_ref) == argmax(lp_model);
      s.nll_reference = -lp_ref[next];
    }
  });
  return scores;
}

struct Accumulator {
  double nll = 0.0;
  std::int64_t predictions = 0;
  PerplexityResult result() const {
    return {nll / static_cast<double>(predictions),
            std::exp(nll / static_cast<double>(predictions)), predictions};
  }
};

}  // namespace

PerplexityResult perplexity(const CausalLm& model, const TokenSet& tokens, std::int64_t window,
                            const LogitsSink& sink) {
  const TokenSet set = windows_of(tokens, window);
  check_vocab(set, model.config().vocab_size, "evaluation tokens");
  Accumulator acc;
  for (std::int64_t r0 = 0; r0 < set.rows; r0 += kRowsPerBatch) {
    const std::int64_t r1 = std::min(set.rows, r0 + kRowsPerBatch);
    const MatrixF logits = model.logits(set.rows_span(r0, r1), set.cols);
    if (sink) sink(logits);
    const std::vector<PositionScore> scores = score_positions(set, r0, r1, logits, nullptr);
    for (const PositionScore& s : scores) acc.nll += s.nll_model;
    acc.predictions += static_cast<std::int64_t>(scores.size());
  }
  require(acc.predictions > 0, "perplexity: no predictions (rows of fewer than 2 tokens)");
  return acc.result();
}

ComparisonResult compare_models(const CausalLm& reference, const CausalLm& model,
                                const TokenSet& tokens, std::int64_t window,
                                const LogitsSink& sink) {
  require(reference.config().vocab_size == model.config().vocab_size,
          "compare: the models' vocabularies differ");
  const TokenSet set = windows_of(tokens, window);
  check_vocab(set, model.config().vocab_size, "evaluation tokens");
  Accumulator ref_acc, model_acc;
  double kl = 0.0;
  std::int64_t agree = 0;
  for (std::int64_t r0 = 0; r0 < set.rows; r0 += kRowsPerBatch) {
    const std::int64_t r1 = std::min(set.rows, r0 + kRowsPerBatch);
    const MatrixF a = reference.logits(set.rows_span(r0, r1), set.cols);
    const MatrixF b = model.logits(set.rows_span(r0, r1), set.cols);
    if (sink) sink(b);
    for (const PositionScore& s : score_positions(set, r0, r1, b, &a)) {
      kl += s.kl;
      agree += s.agree ? 1 : 0;
      ref_acc.nll += s.nll_reference;
      model_acc.nll += s.nll_model;
      ++ref_acc.predictions;
      ++model_acc.predictions;
    }
  }
  require(ref_acc.predictions > 0, "compare: no predictions");
  ComparisonResult out;
  out.mean_kl = kl / static_cast<double>(ref_acc.predictions);
  out.top1_agreement = static_cast<double>(agree) / static_cast<double>(ref_acc.predictions);
  out.reference = ref_acc.result();
  out.model = model_acc.result();
  return out;
}

}  // namespace qshard
