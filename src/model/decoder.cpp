// The LLaMA-family decoder layer on the CPU (OpenBLAS for the products).
#include "qshard/model/decoder.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <future>
#include <numbers>
#include <utility>

#include "qshard/core/error.hpp"
#include "qshard/core/parallel.hpp"
#include "qshard/model/moe.hpp"

namespace qshard {
namespace {

// HF rotary frequencies, with Llama-3 or linear scaling where the config says so.
std::vector<double> inverse_frequencies(const ModelConfig& c) {
  const std::int64_t half = c.head_dim / 2;
  std::vector<double> inv(static_cast<std::size_t>(half));
  for (std::int64_t i = 0; i < half; ++i)
    inv[static_cast<std::size_t>(i)] =
        1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / static_cast<double>(c.head_dim));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") {
    for (double& f : inv) f /= s.factor;
  } else if (s.type == "llama3") {
    const double old_context = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_context / s.low_freq_factor;
    const double high_wavelen = old_context / s.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else {
        const double smooth =
            (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
  } else {
    require(s.type.empty(), "unsupported rope_scaling type '", s.type, "'");
  }
  return inv;
}

void rotate(float* x, const float* cos, const float* sin, std::int64_t half) {
  for (std::int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos[i] - b * sin[i];
    x[i + half] = b * cos[i] + a * sin[i];
  }
}

// Query rows per block of the attention products: bounds the scores to kQueryBlock x seq floats.
constexpr std::int64_t kQueryBlock = 128;

// Causal grouped-query attention of one sample: q [seq, heads*d], k/v [seq, kv*d] -> out [seq,
// heads*d]. Per head and block of query rows: scores = scale q k^T over the keys up to the block's
// last row (SGEMM), a max-subtracted fp32 softmax of each row over its causal prefix (sum in
// double), masked keys zeroed, out = p v (SGEMM). The products' shapes depend only on seq, so a
// sample's result does not depend on the other samples of its batch.
void attention(const ModelConfig& c, const float* q, const float* k, const float* v,
               std::int64_t seq, float* out) {
  const std::int64_t d = c.head_dim, heads = c.num_attention_heads;
  const std::int64_t group = heads / c.num_key_value_heads;
  const auto q_stride = static_cast<int>(heads * d);
  const auto kv_stride = static_cast<int>(c.num_key_value_heads * d);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> scores(static_cast<std::size_t>(std::min(seq, kQueryBlock) * seq));
  for (std::int64_t h = 0; h < heads; ++h) {
    const std::int64_t kvh = h / group;
    for (std::int64_t t0 = 0; t0 < seq; t0 += kQueryBlock) {
      const std::int64_t t1 = std::min(seq, t0 + kQueryBlock), rows = t1 - t0, keys = t1;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                  static_cast<int>(keys), static_cast<int>(d), scale, q + t0 * q_stride + h * d,
                  q_stride, k + kvh * d, kv_stride, 0.0f, scores.data(), static_cast<int>(keys));
      for (std::int64_t r = 0; r < rows; ++r) {
        float* row = scores.data() + r * keys;
        const std::int64_t visible = t0 + r + 1;
        const float max_score = *std::max_element(row, row + visible);
        double total = 0.0;
        for (std::int64_t s = 0; s < visible; ++s) {
          row[s] = std::exp(row[s] - max_score);
          total += row[s];
        }
        const auto inv_total = static_cast<float>(1.0 / total);
        for (std::int64_t s = 0; s < visible; ++s) row[s] *= inv_total;
        std::fill(row + visible, row + keys, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                  static_cast<int>(d), static_cast<int>(keys), 1.0f, scores.data(),
                  static_cast<int>(keys), v + kvh * d, kv_stride, 0.0f, out + t0 * q_stride + h * d,
                  q_stride);
    }
  }
}

void add_in_place(MatrixF& a, const MatrixF& b) {
  for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] += b.data()[i];
}

}  // namespace

InputId input_of(ModuleId module) { return {input_of(module.linear), module.expert}; }

std::int64_t input_features(const ModelConfig& c, InputId input) {
  if (input.expert == kDense) return input_features(c, input.kind);
  if (input.kind == LinearInput::Mlp) return c.hidden_size;  // an expert's, or kEveryExpert
  require(input.kind == LinearInput::MlpDown, "an expert has no attention input");
  return input.expert == kSharedExpert ? c.moe.shared_expert_intermediate
                                       : c.moe.expert_intermediate;
}

std::int64_t input_features(const ModelConfig& c, LinearInput input) {
  switch (input) {
    case LinearInput::Attention:
    case LinearInput::Mlp:
      return c.hidden_size;
    case LinearInput::AttentionOutput:
      return c.q_dim();
    case LinearInput::MlpDown:
      return c.intermediate_size;
  }
  throw Error("invalid linear input");
}

const MatrixF& LayerWeights::operator[](ModuleId module) const {
  if (module.dense()) return (*this)[module.linear];
  const bool routed = module.expert >= 0;
  require(!routed || static_cast<std::size_t>(module.expert) < experts.size(), "layer has ",
          experts.size(), " experts, no expert ", module.expert);
  const ExpertWeights& e =
      routed ? experts[static_cast<std::size_t>(module.expert)] : shared_expert;
  switch (module.linear) {
    case Linear::Gate:
      return e.gate;
    case Linear::Up:
      return e.up;
    case Linear::Down:
      return e.down;
    default:
      throw Error(str("an expert has no ", linear_name(module.linear)));
  }
}

MatrixF& LayerWeights::operator[](ModuleId module) {
  return const_cast<MatrixF&>(std::as_const(*this)[module]);
}

const std::vector<float>& LayerWeights::bias_of(ModuleId module) const {
  static const std::vector<float> kNone;
  return module.dense() ? bias[static_cast<std::size_t>(module.linear)] : kNone;
}

LayerWeights LayerWeights::load(const WeightSource& source, std::int64_t layer) {
  // Errors name the layer and module: "layer 3: up_proj: FILE: tensor ... non-finite ...".
  const auto load = [&source, layer](const std::string& name, std::string_view module) {
    try {
      return source.load(name);
    } catch (const Error& e) {
      throw Error(str("layer ", layer, ": ", module, ": ", e.what()));
    }
  };
  const ModelConfig& config = source.config();
  LayerWeights w;
  w.input_norm = load(input_norm_name(layer), "input_layernorm");
  w.post_norm = load(post_attention_norm_name(layer), "post_attention_layernorm");
  if (config.qk_norm) {
    w.q_norm = load(q_norm_name(layer), "q_norm");
    w.k_norm = load(k_norm_name(layer), "k_norm");
  }
  if (config.sparse_layer(layer)) {
    w.router = load(router_name(config, layer), "router");
    w.experts.resize(static_cast<std::size_t>(config.moe.num_experts));
    if (config.moe.shared_expert_intermediate > 0)
      w.shared_expert_gate = load(shared_expert_gate_name(layer), "shared_expert_gate");
  }
  // The modules concurrently (sources are read-only): the serial parts of one tensor's load
  // (allocation, first touch of its pages, checks) overlap with the others'. Errors come back in
  // module order.
  const std::vector<ModuleId> modules = layer_modules(config, layer);
  std::vector<std::exception_ptr> errors(modules.size());
  parallel_for(modules.size(), 8, [&](std::size_t i) {
    const ModuleId m = modules[i];
    const std::string path =
        checkpoint_module_name(config, m);  // "up_proj", "mlp.experts.3.up_proj"
    try {
      w[m] = load(module_weight_name(config, layer, m), path);
      const std::string bias = module_bias_name(config, layer, m);
      if (m.dense() && source.contains(bias))
        w.bias[static_cast<std::size_t>(m.linear)] = load(bias, path).values();
    } catch (...) {
      errors[i] = std::current_exception();
    }
  });
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return w;
}

RotaryTable::RotaryTable(const ModelConfig& config, std::int64_t max_positions)
    : head_dim_(config.head_dim), max_positions_(max_positions) {
  require(head_dim_ % 2 == 0, "rotary embedding needs an even head_dim (got ", head_dim_, ")");
  const std::vector<double> inv = inverse_frequencies(config);
  const std::int64_t half = head_dim_ / 2;
  cos_.resize(static_cast<std::size_t>(max_positions * half));
  sin_.resize(cos_.size());
  for (std::int64_t p = 0; p < max_positions; ++p)
    for (std::int64_t i = 0; i < half; ++i) {
      // HF computes the angle in fp32 before cos/sin.
      const float angle =
          static_cast<float>(p) * static_cast<float>(inv[static_cast<std::size_t>(i)]);
      cos_[static_cast<std::size_t>(p * half + i)] = std::cos(angle);
      sin_[static_cast<std::size_t>(p * half + i)] = std::sin(angle);
    }
}

MatrixF linear_forward(const MatrixF& x, const MatrixF& weight, const std::vector<float>& bias) {
  return linear_forward_blocks(x, weight, bias, std::max<std::int64_t>(x.rows(), 1));
}

MatrixF linear_forward_blocks(const MatrixF& x, const MatrixF& weight,
                              const std::vector<float>& bias, std::int64_t block_rows) {
  require(x.cols() == weight.cols(), "linear: input has ", x.cols(), " features, weight expects ",
          weight.cols());
  require(block_rows > 0 && x.rows() % block_rows == 0, "linear: ", x.rows(),
          " rows are not whole blocks of ", block_rows);
  require(bias.empty() || static_cast<std::int64_t>(bias.size()) == weight.rows(),
          "linear: bias of ", bias.size(), " for ", weight.rows(), " outputs");
  MatrixF y(x.rows(), weight.rows());
  if (weight.rows() > 0 && x.cols() > 0) {
    // One product of the same shape per block: BLAS may pick kernels by shape, so equal shapes
    // keep each block's result independent of how many blocks are in the batch.
    for (std::int64_t r0 = 0; r0 < x.rows(); r0 += block_rows) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(block_rows),
                  static_cast<int>(weight.rows()), static_cast<int>(x.cols()), 1.0f,
                  x.data() + r0 * x.cols(), static_cast<int>(x.cols()), weight.data(),
                  static_cast<int>(weight.cols()), 0.0f, y.data() + r0 * y.cols(),
                  static_cast<int>(y.cols()));
    }
  }
  if (!bias.empty()) {
    for (std::int64_t r = 0; r < y.rows(); ++r)
      for (std::int64_t c = 0; c < y.cols(); ++c) y(r, c) += bias[static_cast<std::size_t>(c)];
  }
  return y;
}

void rms_norm_rows(float* x, std::int64_t rows, std::int64_t cols, const float* weight,
                   double eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    double sum = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) sum += static_cast<double>(row[c]) * row[c];
    const auto inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(cols) + eps));
    for (std::int64_t c = 0; c < cols; ++c) row[c] = weight[c] * (row[c] * inv);
  }
}

void rms_norm(MatrixF& x, const MatrixF& weight, double eps) {
  require(weight.size() == static_cast<std::size_t>(x.cols()), "rms_norm: weight of ",
          weight.size(), " for ", x.cols(), " features");
  rms_norm_rows(x.data(), x.rows(), x.cols(), weight.data(), eps);
}

MatrixF forward_layer(const ModelConfig& config, const LayerWeights& w, const RotaryTable& rope,
                      const MatrixF& hidden, std::int64_t seq_len, const CaptureFn& capture,
                      std::optional<LinearInput> stop_after, ExpertCapture expert_capture) {
  require(seq_len > 0 && hidden.rows() % seq_len == 0, "forward: ", hidden.rows(),
          " rows are not whole samples of ", seq_len, " tokens");
  require(seq_len <= rope.max_positions(), "forward: seq_len ", seq_len,
          " beyond the rotary table's ", rope.max_positions());
  require(hidden.cols() == config.hidden_size, "forward: hidden states have ", hidden.cols(),
          " features, the model ", config.hidden_size);
  const auto emit = [&](LinearInput input, const MatrixF& x) {
    if (capture) capture(InputId{input, kDense}, x);
    return stop_after && *stop_after == input;
  };
  const auto linear = [&](const MatrixF& x, Linear l) {
    return linear_forward_blocks(x, w[l], w.bias[static_cast<std::size_t>(l)], seq_len);
  };
  const std::int64_t samples = hidden.rows() / seq_len, d = config.head_dim, half = d / 2;

  MatrixF x = hidden;
  rms_norm(x, w.input_norm, config.rms_norm_eps);
  if (emit(LinearInput::Attention, x)) return {};
  MatrixF q = linear(x, Linear::Q);
  MatrixF k = linear(x, Linear::K);
  const MatrixF v = linear(x, Linear::V);
  if (config.qk_norm) {  // Qwen3: each head's d values normalised, before the rotary embedding
    require(w.q_norm.size() == static_cast<std::size_t>(d) &&
                w.k_norm.size() == static_cast<std::size_t>(d),
            "forward: q_norm/k_norm of ", w.q_norm.size(), "/", w.k_norm.size(),
            " values for head_dim ", d);
    rms_norm_rows(q.data(), q.rows() * config.num_attention_heads, d, w.q_norm.data(),
                  config.rms_norm_eps);
    rms_norm_rows(k.data(), k.rows() * config.num_key_value_heads, d, w.k_norm.data(),
                  config.rms_norm_eps);
  }
  for (std::int64_t row = 0; row < q.rows(); ++row) {
    const std::int64_t position = row % seq_len;
    for (std::int64_t h = 0; h < config.num_attention_heads; ++h)
      rotate(q.data() + row * q.cols() + h * d, rope.cos(position), rope.sin(position), half);
    for (std::int64_t h = 0; h < config.num_key_value_heads; ++h)
      rotate(k.data() + row * k.cols() + h * d, rope.cos(position), rope.sin(position), half);
  }
  MatrixF heads(hidden.rows(), config.q_dim());
  for (std::int64_t s = 0; s < samples; ++s) {
    attention(config, q.data() + s * seq_len * q.cols(), k.data() + s * seq_len * k.cols(),
              v.data() + s * seq_len * v.cols(), seq_len,
              heads.data() + s * seq_len * heads.cols());
  }
  if (emit(LinearInput::AttentionOutput, heads)) return {};
  MatrixF h = hidden;
  add_in_place(h, linear(heads, Linear::O));

  MatrixF m = h;
  rms_norm(m, w.post_norm, config.rms_norm_eps);
  if (w.sparse()) {
    const MatrixF moe = moe_forward(config, w, m, seq_len, capture, stop_after, expert_capture);
    if (stop_after == LinearInput::Mlp || stop_after == LinearInput::MlpDown) return {};
    add_in_place(h, moe);
    return h;
  }
  if (emit(LinearInput::Mlp, m)) return {};
  MatrixF gate = linear(m, Linear::Gate);
  const MatrixF up = linear(m, Linear::Up);
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const float g = gate.data()[i];
    gate.data()[i] = g / (1.0f + std::exp(-g)) * up.data()[i];
  }
  if (emit(LinearInput::MlpDown, gate)) return {};
  add_in_place(h, linear(gate, Linear::Down));
  return h;
}

}  // namespace qshard
