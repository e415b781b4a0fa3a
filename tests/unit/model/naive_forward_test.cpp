// A tiny random LLaMA (GQA, q/k/v/o bias, untied head, Llama-3 rope scaling) and a tiny random
// Qwen3 (per-head q/k norms, tied head) written as safetensors and loaded like any model, against a
// naive double-precision implementation of the same equations written here plainly (no BLAS).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <numeric>
#include <random>

#include "qshard/model/causal_lm.hpp"
#include "tiny_model.hpp"

namespace qshard {
namespace {

using test::make_tiny;
using test::make_tiny_moe;
using test::make_tiny_qwen3;
using test::Mat;
using test::TinyModel;
using test::Vec;
using test::write_model;

// ---- the naive reference ----
Vec matvec(const Mat& w, const Vec& x) {
  Vec y(w.size(), 0.0);
  for (std::size_t r = 0; r < w.size(); ++r)
    for (std::size_t c = 0; c < x.size(); ++c) y[r] += w[r][c] * x[c];
  return y;
}
Vec add(Vec a, const Vec& b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}
Vec rmsnorm(const Vec& x, const Vec& w, double eps) {
  double ms = 0.0;
  for (const double v : x) ms += v * v / static_cast<double>(x.size());
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = w[i] * x[i] / std::sqrt(ms + eps);
  return y;
}

Vec swiglu_mlp(const Mat& gate, const Mat& up, const Mat& down, const Vec& x) {
  const Vec g = matvec(gate, x), u = matvec(up, x);
  Vec act(g.size());
  for (std::size_t i = 0; i < g.size(); ++i) act[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
  return matvec(down, act);
}

// Layer l's MLP of one token: dense, or its experts as the Hugging Face code routes them (softmax
// over the router logits, the k most probable, renormalised when norm_topk_prob), plus the shared
// expert scaled by sigmoid(gate x).
Vec naive_mlp(const TinyModel& m, std::int64_t l, const Vec& x) {
  const ModelConfig& c = m.config;
  const auto W = [&](ModuleId id) { return m.tensors.at(module_weight_name(c, l, id)); };
  const auto mlp = [&](std::int32_t e) {
    return swiglu_mlp(W({Linear::Gate, e}), W({Linear::Up, e}), W({Linear::Down, e}), x);
  };
  if (!c.sparse_layer(l)) return mlp(kDense);
  const Vec logits = matvec(m.tensors.at(router_name(c, l)), x);
  Vec p(logits.size());
  const double top = *std::max_element(logits.begin(), logits.end());
  double total = 0.0;
  for (std::size_t e = 0; e < p.size(); ++e) total += (p[e] = std::exp(logits[e] - top));
  for (double& v : p) v /= total;
  std::vector<std::size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return p[a] > p[b]; });
  const auto k = static_cast<std::size_t>(c.moe.experts_per_token);
  double chosen = 0.0;
  for (std::size_t j = 0; j < k; ++j) chosen += p[order[j]];
  Vec out(x.size(), 0.0);
  for (std::size_t j = 0; j < k; ++j) {
    const double weight = c.moe.norm_topk_prob ? p[order[j]] / chosen : p[order[j]];
    const Vec y = mlp(static_cast<std::int32_t>(order[j]));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] += weight * y[i];
  }
  if (c.moe.shared_expert_intermediate > 0) {
    const double gate =
        1.0 / (1.0 + std::exp(-matvec(m.tensors.at(shared_expert_gate_name(l)), x)[0]));
    const Vec y = mlp(kSharedExpert);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] += gate * y[i];
  }
  return out;
}

Mat naive_logits(const TinyModel& m, const std::vector<std::int32_t>& tokens) {
  const ModelConfig& c = m.config;
  const auto& T = m.tensors;
  const std::size_t n = tokens.size(), d = static_cast<std::size_t>(c.head_dim),
                    heads = static_cast<std::size_t>(c.num_attention_heads),
                    kv = static_cast<std::size_t>(c.num_key_value_heads);
  // Inverse frequencies, Llama-3 scaled when the config says so, written out from the published
  // rule.
  const RopeScaling& rs = c.rope_scaling;
  Vec inv(d / 2);
  for (std::size_t i = 0; i < d / 2; ++i) {
    double f = 1.0 / std::pow(c.rope_theta, 2.0 * static_cast<double>(i) / static_cast<double>(d));
    const double context = static_cast<double>(rs.original_max_position_embeddings);
    const double wavelen = 2 * std::numbers::pi / f, low = context / rs.low_freq_factor,
                 high = context / rs.high_freq_factor;
    if (rs.type == "llama3" && wavelen > low) {
      f = f / rs.factor;
    } else if (rs.type == "llama3" && wavelen >= high) {
      const double smooth =
          (context / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      f = (1 - smooth) * f / rs.factor + smooth * f;
    }
    inv[i] = f;
  }
  const auto rope = [&](Vec v, std::size_t pos) {  // rotate-half, per head
    for (std::size_t h = 0; h < v.size() / d; ++h)
      for (std::size_t i = 0; i < d / 2; ++i) {
        const double a = v[h * d + i], b = v[h * d + i + d / 2],
                     angle = static_cast<double>(pos) * inv[i];
        v[h * d + i] = a * std::cos(angle) - b * std::sin(angle);
        v[h * d + i + d / 2] = b * std::cos(angle) + a * std::sin(angle);
      }
    return v;
  };
  // Qwen3: RMSNorm over each head's d values.
  const auto head_norm = [&](Vec v, const std::string& weight) {
    if (!c.qk_norm) return v;
    for (std::size_t h = 0; h < v.size() / d; ++h) {
      const Vec head(v.begin() + static_cast<std::ptrdiff_t>(h * d),
                     v.begin() + static_cast<std::ptrdiff_t>((h + 1) * d));
      const Vec normed = rmsnorm(head, T.at(weight)[0], c.rms_norm_eps);
      std::copy(normed.begin(), normed.end(), v.begin() + static_cast<std::ptrdiff_t>(h * d));
    }
    return v;
  };
  std::vector<Vec> h;
  for (const std::int32_t t : tokens)
    h.push_back(T.at(std::string(kEmbedName))[static_cast<std::size_t>(t)]);
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const auto W = [&](Linear x) { return T.at(linear_weight_name(l, x)); };
    const auto B = [&](Linear x) {  // zeros for a module without bias
      const auto it = T.find(linear_bias_name(l, x));
      return it != T.end() ? it->second[0] : Vec(W(x).size(), 0.0);
    };
    std::vector<Vec> q(n), k(n), v(n);
    for (std::size_t t = 0; t < n; ++t) {
      const Vec x = rmsnorm(h[t], T.at(input_norm_name(l))[0], c.rms_norm_eps);
      q[t] = rope(head_norm(add(matvec(W(Linear::Q), x), B(Linear::Q)), q_norm_name(l)), t);
      k[t] = rope(head_norm(add(matvec(W(Linear::K), x), B(Linear::K)), k_norm_name(l)), t);
      v[t] = add(matvec(W(Linear::V), x), B(Linear::V));
    }
    for (std::size_t t = 0; t < n; ++t) {
      Vec att(heads * d, 0.0);
      for (std::size_t hh = 0; hh < heads; ++hh) {
        const std::size_t g = hh / (heads / kv);
        Vec s(t + 1);
        double mx = -1e300, total = 0.0;
        for (std::size_t u = 0; u <= t; ++u) {
          double dot = 0.0;
          for (std::size_t i = 0; i < d; ++i) dot += q[t][hh * d + i] * k[u][g * d + i];
          s[u] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, s[u]);
        }
        for (double& x : s) total += (x = std::exp(x - mx));
        for (std::size_t u = 0; u <= t; ++u)
          for (std::size_t i = 0; i < d; ++i) att[hh * d + i] += s[u] / total * v[u][g * d + i];
      }
      h[t] = add(h[t], add(matvec(W(Linear::O), att), B(Linear::O)));
      const Vec x = rmsnorm(h[t], T.at(post_attention_norm_name(l))[0], c.rms_norm_eps);
      h[t] = add(h[t], naive_mlp(m, l, x));
    }
  }
  Mat logits;
  for (std::size_t t = 0; t < n; ++t)
    logits.push_back(matvec(T.count(std::string(kLmHeadName)) ? T.at(std::string(kLmHeadName))
                                                              : T.at(std::string(kEmbedName)),
                            rmsnorm(h[t], T.at(std::string(kFinalNormName))[0], c.rms_norm_eps)));
  return logits;
}

// The largest |logit - double reference| of the model written as a Hugging Face directory and
// loaded like any other, over 2 samples of 24 tokens (positions beyond the Llama-3 test model's
// original context exercise all three rope bands).
double max_logit_error(const TinyModel& m, std::uint64_t seed) {
  const test::TempDir dir("qshard-tiny");
  write_model(m, dir.path());
  const auto source = open_hf_model(dir.path());
  EXPECT_EQ(source->config().model_type, m.config.model_type);
  EXPECT_EQ(source->config().qk_norm, m.config.qk_norm);
  const CausalLm model(*source);
  std::mt19937 rng(static_cast<unsigned>(seed));
  const std::int64_t seq = 24;
  std::vector<std::int32_t> tokens(2 * seq);
  for (auto& t : tokens) t = static_cast<std::int32_t>(rng() % 64);
  const MatrixF logits = model.logits(tokens, seq);
  double max_diff = 0.0;
  for (int s = 0; s < 2; ++s) {
    const Mat ref = naive_logits(
        m, std::vector<std::int32_t>(tokens.begin() + s * seq, tokens.begin() + (s + 1) * seq));
    for (std::int64_t t = 0; t < seq; ++t)
      for (std::int64_t v = 0; v < 64; ++v)
        max_diff = std::max(
            max_diff, std::abs(logits(s * seq + t, v) -
                               ref[static_cast<std::size_t>(t)][static_cast<std::size_t>(v)]));
  }
  return max_diff;
}

TEST(NaiveForward, TinyGqaBiasUntiedLlama3ModelMatchesDoublePrecision) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE(seed);
  const TinyModel m = make_tiny(seed);
  EXPECT_TRUE(m.config.o_proj_bias);
  EXPECT_EQ(m.config.rope_scaling.type, "llama3");
  const double max_diff = max_logit_error(m, seed);
  std::cout << "tiny model: max |logit - double reference| = " << max_diff << '\n';
  EXPECT_LT(max_diff, 1e-4);
}

// Qwen3: per-head q/k RMSNorm before the rotary embedding, q_proj wider than the hidden size,
// the head tied to the embedding.
TEST(NaiveForward, TinyQwen3ModelMatchesDoublePrecision) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE(seed);
  const TinyModel m = make_tiny_qwen3(seed);
  const double max_diff = max_logit_error(m, seed);
  std::cout << "tiny Qwen3: max |logit - double reference| = " << max_diff << '\n';
  EXPECT_LT(max_diff, 1e-4);
}

// Mixtures of experts: routing (softmax, top-2, renormalised or not), the experts of each token,
// Qwen2-MoE's gated shared expert and its dense layer, Qwen3-MoE's q/k norms; loaded from the
// Hugging Face names of each family.
TEST(NaiveForward, TinyMixtureOfExpertsModelsMatchDoublePrecision) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE(seed);
  for (const std::string family : {"mixtral", "qwen2_moe", "qwen3_moe"}) {
    const TinyModel m = make_tiny_moe(seed, family);
    const double max_diff = max_logit_error(m, seed);
    std::cout << "tiny " << family << ": max |logit - double reference| = " << max_diff << '\n';
    EXPECT_LT(max_diff, 1e-4) << family;
  }
}

TEST(Forward, CaptureDeliversEveryInputAndStopAfterStops) {
  const TinyModel m = make_tiny(3);
  const test::TempDir dir("qshard-tiny-capture");
  write_model(m, dir.path());
  const auto source = open_hf_model(dir.path());
  const ModelConfig& c = source->config();
  const LayerWeights w = LayerWeights::load(*source, 0);
  const RotaryTable rope(c, 16);
  MatrixF hidden(3 * 16, c.hidden_size);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (float& v : hidden.values()) v = normal(rng);
  std::vector<std::pair<LinearInput, std::int64_t>> seen;
  const MatrixF out = forward_layer(c, w, rope, hidden, 16, [&](InputId i, const MatrixF& x) {
    EXPECT_EQ(x.rows(), 48);
    seen.emplace_back(i.kind, x.cols());
  });
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], std::make_pair(LinearInput::Attention, std::int64_t{32}));
  EXPECT_EQ(seen[1], std::make_pair(LinearInput::AttentionOutput, std::int64_t{32}));
  EXPECT_EQ(seen[2], std::make_pair(LinearInput::Mlp, std::int64_t{32}));
  EXPECT_EQ(seen[3], std::make_pair(LinearInput::MlpDown, std::int64_t{48}));
  seen.clear();
  const MatrixF stopped = forward_layer(
      c, w, rope, hidden, 16,
      [&](InputId i, const MatrixF& x) { seen.emplace_back(i.kind, x.cols()); },
      LinearInput::AttentionOutput);
  EXPECT_TRUE(stopped.empty());
  EXPECT_EQ(seen.size(), 2u);
  const LinearInput inputs[] = {LinearInput::Attention, LinearInput::AttentionOutput,
                                LinearInput::Mlp, LinearInput::MlpDown};
  for (std::size_t i = 0; i < 4; ++i) {
    seen.clear();
    EXPECT_TRUE(
        forward_layer(
            c, w, rope, hidden, 16,
            [&](InputId input, const MatrixF& x) { seen.emplace_back(input.kind, x.cols()); },
            inputs[i])
            .empty());
    ASSERT_EQ(seen.size(), i + 1);
    EXPECT_EQ(seen.back().first, inputs[i]);
  }
  // The middle sample forwarded alone is bitwise the middle sample of the batch of 3, and the
  // same batch twice is bitwise identical.
  const MatrixF alone =
      forward_layer(c, w, rope,
                    MatrixF(16, c.hidden_size,
                            std::vector<float>(hidden.data() + 16 * c.hidden_size,
                                               hidden.data() + 32 * c.hidden_size)),
                    16);
  for (std::int64_t i = 0; i < 16 * c.hidden_size; ++i)
    ASSERT_EQ(alone.data()[i], out.data()[16 * c.hidden_size + i]) << "element " << i;
  EXPECT_EQ(forward_layer(c, w, rope, hidden, 16), out);
}

TEST(Forward, LogitsOfASampleDoNotDependOnItsBatch) {
  const TinyModel m = make_tiny(5);
  const test::TempDir dir("qshard-tiny-batch");
  write_model(m, dir.path());
  const CausalLm model(*open_hf_model(dir.path()));
  const std::int64_t seq = 12;
  std::vector<std::int32_t> tokens(3 * seq);
  for (std::size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = static_cast<std::int32_t>(i * 37 % 64);
  const MatrixF batch = model.logits(tokens, seq);
  const MatrixF alone = model.logits(std::span<const std::int32_t>(tokens).subspan(seq, seq), seq);
  ASSERT_EQ(alone.rows(), seq);
  for (std::int64_t t = 0; t < seq; ++t)
    for (std::int64_t v = 0; v < 64; ++v) ASSERT_EQ(alone(t, v), batch(seq + t, v));
}

}  // namespace
}  // namespace qshard
