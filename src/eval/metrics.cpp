#include "qshard/eval/metrics.hpp"

#include <algorithm>
#include <cmath>

#include "qshard/core/error.hpp"

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
  std::vector<double> lp;
  for (std::int64_t r0 = 0; r0 < set.rows; r0 += kRowsPerBatch) {
    const std::int64_t r1 = std::min(set.rows, r0 + kRowsPerBatch);
    const MatrixF logits = model.logits(set.rows_span(r0, r1), set.cols);
    if (sink) sink(logits);
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t t = 0; t + 1 < set.cols; ++t) {
        const std::int64_t row = (r - r0) * set.cols + t;
        log_softmax(logits.data() + row * logits.cols(), logits.cols(), lp);
        acc.nll -=
            lp[static_cast<std::size_t>(set.ids[static_cast<std::size_t>(r * set.cols + t + 1)])];
        ++acc.predictions;
      }
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
  std::vector<double> lp_ref, lp_model;
  for (std::int64_t r0 = 0; r0 < set.rows; r0 += kRowsPerBatch) {
    const std::int64_t r1 = std::min(set.rows, r0 + kRowsPerBatch);
    const MatrixF a = reference.logits(set.rows_span(r0, r1), set.cols);
    const MatrixF b = model.logits(set.rows_span(r0, r1), set.cols);
    if (sink) sink(b);
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t t = 0; t + 1 < set.cols; ++t) {
        const std::int64_t row = (r - r0) * set.cols + t;
        log_softmax(a.data() + row * a.cols(), a.cols(), lp_ref);
        log_softmax(b.data() + row * b.cols(), b.cols(), lp_model);
        double k = 0.0;
        for (std::size_t i = 0; i < lp_ref.size(); ++i)
          k += std::exp(lp_ref[i]) * (lp_ref[i] - lp_model[i]);
        kl += k;
        agree += argmax(lp_ref) == argmax(lp_model);
        const auto next =
            static_cast<std::size_t>(set.ids[static_cast<std::size_t>(r * set.cols + t + 1)]);
        ref_acc.nll -= lp_ref[next];
        model_acc.nll -= lp_model[next];
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
