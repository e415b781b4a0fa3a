#pragma once
// One LLaMA-family decoder layer on the CPU: RMSNorm, q/k/v (+bias), Qwen3's RMSNorm of each
// query and key head, rotary (HF rotate-half, Llama-3 scaling), grouped-query causal attention, o,
// residual, RMSNorm, SwiGLU MLP or a mixture of SwiGLU experts (model/moe.hpp), residual.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "qshard/core/matrix.hpp"
#include "qshard/io/model_config.hpp"
#include "qshard/model/weight_source.hpp"

namespace qshard {

// One SwiGLU MLP: a routed expert, the shared expert, or (in LayerWeights::linear) the dense MLP.
struct ExpertWeights {
  MatrixF gate, up, down;  // [width, hidden], [width, hidden], [hidden, width]
};

struct LayerWeights {
  MatrixF input_norm;                      // [1, hidden]
  MatrixF post_norm;                       // [1, hidden]
  MatrixF q_norm, k_norm;                  // [1, head_dim] when the config has qk_norm (Qwen3)
  std::array<MatrixF, 7> linear;           // the dense modules by Linear: [out, in] as HF stores
                                           // them (gate/up/down empty in a sparse layer)
  std::array<std::vector<float>, 7> bias;  // empty when the module has none
  // A sparse (mixture-of-experts) layer: the router [experts, hidden], the routed experts, and
  // Qwen2-MoE's shared expert with its gate [1, hidden] (empty when the family has none).
  MatrixF router;
  std::vector<ExpertWeights> experts;
  ExpertWeights shared_expert;
  MatrixF shared_expert_gate;

  bool sparse() const { return !experts.empty(); }
  MatrixF& operator[](Linear l) { return linear[static_cast<int>(l)]; }
  const MatrixF& operator[](Linear l) const { return linear[static_cast<int>(l)]; }
  MatrixF& operator[](ModuleId module);
  const MatrixF& operator[](ModuleId module) const;
  const std::vector<float>& bias_of(ModuleId module) const;  // experts have none
  static LayerWeights load(const WeightSource& source, std::int64_t layer);
};

// With ExpertCapture::All every routed expert's gate/up input is every token: one input for all of
// them, InputId{Mlp, kEveryExpert}.
inline constexpr std::int32_t kEveryExpert = -3;

// One input of a layer: its kind and whose it is (kDense, kSharedExpert, a routed expert, or
// kEveryExpert).
struct InputId {
  // A kind alone names the dense module's input.
  constexpr InputId(LinearInput k = LinearInput::Attention,  // NOLINT: implicit on purpose
                    std::int32_t e = kDense)
      : kind(k), expert(e) {}
  LinearInput kind;
  std::int32_t expert;
  friend auto operator<=>(const InputId&, const InputId&) = default;
};
InputId input_of(ModuleId module);
// Features of a linear input (hidden size, attention width or an MLP's intermediate size).
std::int64_t input_features(const ModelConfig& config, LinearInput input);
std::int64_t input_features(const ModelConfig& config, InputId input);

// Called with each linear input [tokens, features] as it is computed (an expert's inputs once per
// call of the forward, its tokens in row order).
using CaptureFn = std::function<void(InputId input, const MatrixF& x)>;

// Which tokens an expert's inputs are captured for: those routed to it (what the layer computes),
// or every token (Hessians only, `--moe_calibration all`: the layer's output still uses the
// routing; the routed experts' gate/up input is then captured once, as {Mlp, kEveryExpert}).
enum class ExpertCapture : std::uint8_t { Routed, All };

// cos/sin tables of the rotary embedding for positions [0, max_positions).
class RotaryTable {
 public:
  RotaryTable(const ModelConfig& config, std::int64_t max_positions);
  std::int64_t head_dim() const { return head_dim_; }
  const float* cos(std::int64_t position) const { return cos_.data() + position * head_dim_ / 2; }
  const float* sin(std::int64_t position) const { return sin_.data() + position * head_dim_ / 2; }
  std::int64_t max_positions() const { return max_positions_; }

 private:
  std::int64_t head_dim_;
  std::int64_t max_positions_;
  std::vector<float> cos_, sin_;  // [positions, head_dim/2]
};

// Forwards `hidden` ([samples * seq_len, hidden_size], sample-major; each sample is its own causal
// sequence at positions 0..seq_len-1) through one layer. Calls `capture` for each linear input;
// with `stop_after` returns an empty matrix right after the inputs of that kind are captured.
// Deterministic; each sample's result is bitwise the same whichever samples share its batch.
MatrixF forward_layer(const ModelConfig& config, const LayerWeights& weights,
                      const RotaryTable& rope, const MatrixF& hidden, std::int64_t seq_len,
                      const CaptureFn& capture = {},
                      std::optional<LinearInput> stop_after = std::nullopt,
                      ExpertCapture expert_capture = ExpertCapture::Routed);

// y = x W^T (+ b): x [tokens, in], W [out, in].
MatrixF linear_forward(const MatrixF& x, const MatrixF& weight,
                       const std::vector<float>& bias = {});
// The same, as one product per block of `block_rows` rows (x.rows() a multiple of it): each
// block's result is then bitwise independent of the other blocks (forward_layer uses one block per
// sample).
MatrixF linear_forward_blocks(const MatrixF& x, const MatrixF& weight,
                              const std::vector<float>& bias, std::int64_t block_rows);
void rms_norm(MatrixF& x, const MatrixF& weight, double eps);
// The same over `rows` contiguous rows of `cols` values (Qwen3's per-head q/k norms: one row per
// token and head).
void rms_norm_rows(float* x, std::int64_t rows, std::int64_t cols, const float* weight, double eps);

}  // namespace qshard
