// The mixture-of-experts MLP on the CPU (OpenBLAS for the products, one per sample and expert).
#include "qshard/model/moe.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

// The rows of `m` listed in `rows`, in that order.
MatrixF gather_rows(const MatrixF& m, const std::vector<std::int64_t>& rows) {
  MatrixF out(static_cast<std::int64_t>(rows.size()), m.cols());
  for (std::size_t i = 0; i < rows.size(); ++i)
    std::copy(m.data() + rows[i] * m.cols(), m.data() + (rows[i] + 1) * m.cols(),
              out.data() + static_cast<std::int64_t>(i) * m.cols());
  return out;
}

// silu(gate) * up, in place in `gate`.
void swiglu(MatrixF& gate, const MatrixF& up) {
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const float g = gate.data()[i];
    gate.data()[i] = g / (1.0f + std::exp(-g)) * up.data()[i];
  }
}

// One expert's tokens: their rows in the unit (ascending) and routing weights, split by sample.
struct ExpertTokens {
  std::vector<std::int64_t> rows;
  std::vector<float> weights;
  std::vector<std::size_t> sample_begin;  // index into rows where each sample starts (+ end)
};

std::vector<ExpertTokens> tokens_by_expert(const Routing& routing, std::int64_t experts,
                                           std::int64_t seq_len) {
  std::vector<ExpertTokens> by_expert(static_cast<std::size_t>(experts));
  for (std::int64_t t = 0; t < routing.tokens; ++t) {
    if (t % seq_len == 0)
      for (ExpertTokens& e : by_expert) e.sample_begin.push_back(e.rows.size());
    for (std::int64_t j = 0; j < routing.k; ++j) {
      const auto index = static_cast<std::size_t>(t * routing.k + j);
      ExpertTokens& e = by_expert[static_cast<std::size_t>(routing.experts[index])];
      e.rows.push_back(t);
      e.weights.push_back(routing.weights[index]);
    }
  }
  for (ExpertTokens& e : by_expert) e.sample_begin.push_back(e.rows.size());
  return by_expert;
}

// y = x W^T over `x`'s rows sample by sample (the row ranges of `begin`): one product per sample.
MatrixF per_sample_linear(const MatrixF& x, const MatrixF& weight,
                          const std::vector<std::size_t>& begin) {
  require(x.cols() == weight.cols(), "moe: input of ", x.cols(), " features, weight expects ",
          weight.cols());
  MatrixF y(x.rows(), weight.rows());
  for (std::size_t s = 0; s + 1 < begin.size(); ++s) {
    const auto r0 = static_cast<std::int64_t>(begin[s]),
               r1 = static_cast<std::int64_t>(begin[s + 1]);
    if (r0 == r1 || weight.rows() == 0) continue;
    // In place on the sample's rows: the product linear_forward makes of a copy of them.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(r1 - r0),
                static_cast<int>(weight.rows()), static_cast<int>(x.cols()), 1.0f,
                x.data() + r0 * x.cols(), static_cast<int>(x.cols()), weight.data(),
                static_cast<int>(weight.cols()), 0.0f, y.data() + r0 * y.cols(),
                static_cast<int>(y.cols()));
  }
  return y;
}

// A dense SwiGLU MLP's intermediate over every token (one product per sample).
MatrixF dense_intermediate(const MatrixF& m, const ExpertWeights& w, std::int64_t seq_len) {
  MatrixF gate = linear_forward_blocks(m, w.gate, {}, seq_len);
  swiglu(gate, linear_forward_blocks(m, w.up, {}, seq_len));
  return gate;
}

}  // namespace

Routing route(const MoeConfig& moe, const MatrixF& logits) {
  require(logits.cols() == moe.num_experts, "route: ", logits.cols(), " logits for ",
          moe.num_experts, " experts");
  Routing r;
  r.tokens = logits.rows();
  r.k = moe.experts_per_token;
  r.experts.resize(static_cast<std::size_t>(r.tokens * r.k));
  r.weights.resize(r.experts.size());
  const std::int64_t experts = logits.cols();
  std::vector<float> probs(static_cast<std::size_t>(experts));
  std::vector<std::int32_t> order(probs.size());
  for (std::int64_t t = 0; t < r.tokens; ++t) {
    const float* row = logits.data() + t * experts;
    const float top = *std::max_element(row, row + experts);
    double total = 0.0;
    for (std::int64_t e = 0; e < experts; ++e) total += std::exp(static_cast<double>(row[e] - top));
    for (std::int64_t e = 0; e < experts; ++e)
      probs[static_cast<std::size_t>(e)] =
          static_cast<float>(std::exp(static_cast<double>(row[e] - top)) / total);
    std::iota(order.begin(), order.end(), 0);
    // The k largest; equal probabilities go to the lower index.
    std::partial_sort(order.begin(), order.begin() + r.k, order.end(),
                      [&probs](std::int32_t a, std::int32_t b) {
                        const float pa = probs[static_cast<std::size_t>(a)];
                        const float pb = probs[static_cast<std::size_t>(b)];
                        return pa > pb || (pa == pb && a < b);
                      });
    float chosen = 0.0f;
    for (std::int64_t j = 0; j < r.k; ++j) chosen += probs[static_cast<std::size_t>(order[j])];
    for (std::int64_t j = 0; j < r.k; ++j) {
      const auto index = static_cast<std::size_t>(t * r.k + j);
      const float p = probs[static_cast<std::size_t>(order[j])];
      r.experts[index] = order[j];
      r.weights[index] = moe.norm_topk_prob ? p / chosen : p;
    }
  }
  return r;
}

MatrixF moe_forward(const ModelConfig& config, const LayerWeights& w, const MatrixF& m,
                    std::int64_t seq_len, const CaptureFn& capture,
                    std::optional<LinearInput> stop_after, ExpertCapture expert_capture) {
  const MoeConfig& moe = config.moe;
  require(static_cast<std::int64_t>(w.experts.size()) == moe.num_experts &&
              w.router.rows() == moe.num_experts && w.router.cols() == config.hidden_size,
          "moe: a sparse layer needs ", moe.num_experts, " experts and a router of [",
          moe.num_experts, ", ", config.hidden_size, "]");
  const bool shared = moe.shared_expert_intermediate > 0;
  const bool all_tokens = expert_capture == ExpertCapture::All;
  const auto emit = [&](InputId input, const MatrixF& x) {
    if (capture && x.rows() > 0) capture(input, x);
  };
  const Routing routing = route(moe, linear_forward_blocks(m, w.router, {}, seq_len));
  const std::vector<ExpertTokens> tokens = tokens_by_expert(routing, moe.num_experts, seq_len);

  // The experts' inputs: their tokens' rows of m (every row with --moe_calibration all).
  std::vector<MatrixF> inputs;
  for (std::int64_t e = 0; e < moe.num_experts; ++e) {
    inputs.push_back(gather_rows(m, tokens[static_cast<std::size_t>(e)].rows));
    if (!all_tokens) emit({LinearInput::Mlp, static_cast<std::int32_t>(e)}, inputs.back());
  }
  if (all_tokens) emit({LinearInput::Mlp, kEveryExpert}, m);
  if (shared) emit({LinearInput::Mlp, kSharedExpert}, m);
  if (stop_after == LinearInput::Mlp) return {};

  std::vector<MatrixF> intermediates;
  for (std::int64_t e = 0; e < moe.num_experts; ++e) {
    const ExpertWeights& expert = w.experts[static_cast<std::size_t>(e)];
    const ExpertTokens& t = tokens[static_cast<std::size_t>(e)];
    MatrixF gate =
        per_sample_linear(inputs[static_cast<std::size_t>(e)], expert.gate, t.sample_begin);
    swiglu(gate, per_sample_linear(inputs[static_cast<std::size_t>(e)], expert.up, t.sample_begin));
    if (all_tokens && capture)
      emit({LinearInput::MlpDown, static_cast<std::int32_t>(e)},
           dense_intermediate(m, expert, seq_len));
    else
      emit({LinearInput::MlpDown, static_cast<std::int32_t>(e)}, gate);
    intermediates.push_back(std::move(gate));
  }
  MatrixF shared_intermediate;
  if (shared) {
    shared_intermediate = dense_intermediate(m, w.shared_expert, seq_len);
    emit({LinearInput::MlpDown, kSharedExpert}, shared_intermediate);
  }
  if (stop_after == LinearInput::MlpDown) return {};

  // Each token's experts summed in expert order, then the gated shared expert.
  MatrixF out(m.rows(), config.hidden_size);
  for (std::int64_t e = 0; e < moe.num_experts; ++e) {
    const ExpertTokens& t = tokens[static_cast<std::size_t>(e)];
    const MatrixF y =
        per_sample_linear(intermediates[static_cast<std::size_t>(e)],
                          w.experts[static_cast<std::size_t>(e)].down, t.sample_begin);
    for (std::size_t i = 0; i < t.rows.size(); ++i) {
      float* row = out.data() + t.rows[i] * out.cols();
      const float* values = y.data() + static_cast<std::int64_t>(i) * y.cols();
      for (std::int64_t c = 0; c < out.cols(); ++c) row[c] += values[c] * t.weights[i];
    }
  }
  if (shared) {
    const MatrixF y = linear_forward_blocks(shared_intermediate, w.shared_expert.down, {}, seq_len);
    const MatrixF gate = linear_forward_blocks(m, w.shared_expert_gate, {}, seq_len);
    for (std::int64_t r = 0; r < out.rows(); ++r) {
      const float scale = 1.0f / (1.0f + std::exp(-gate(r, 0)));
      for (std::int64_t c = 0; c < out.cols(); ++c) out(r, c) += scale * y(r, c);
    }
  }
  return out;
}

}  // namespace qshard
