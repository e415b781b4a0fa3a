#pragma once
// The mixture-of-experts MLP of a sparse decoder layer (Mixtral, Qwen2-MoE, Qwen3-MoE), computed as
// the Hugging Face implementations do: router logits m R^T; per token a float softmax over the
// experts, its k largest probabilities (ties to the lower expert index), renormalised to sum 1
// when norm_topk_prob (Mixtral: always); each expert applied to the tokens routed to it,
// down(silu(gate x) * up x) scaled by the token's probability and summed in expert order; plus
// Qwen2-MoE's shared expert on every token, scaled by sigmoid(m g^T).
#include <cstdint>
#include <optional>
#include <vector>

#include "qshard/core/matrix.hpp"
#include "qshard/io/model_config.hpp"
#include "qshard/model/decoder.hpp"

namespace qshard {

// The experts each token is routed to and their weights, [tokens, k] row-major, by decreasing
// probability.
struct Routing {
  std::int64_t tokens = 0, k = 0;
  std::vector<std::int32_t> experts;
  std::vector<float> weights;
};
// Routes each row of `logits` ([tokens, experts]) as config's family does.
Routing route(const MoeConfig& moe, const MatrixF& logits);

// The sparse MLP's output [tokens, hidden] for `m` ([samples * seq_len, hidden], RMSNorm-ed
// hidden states). Calls `capture` with each expert's inputs ({Mlp, e} for every expert, or
// {Mlp, kEveryExpert} once with ExpertCapture::All, then the shared expert's; then the same for
// MlpDown), and returns an empty matrix right after the inputs of kind `stop_after`. Each sample's
// products are its own: a sample's result does not depend on the others in the batch.
MatrixF moe_forward(const ModelConfig& config, const LayerWeights& weights, const MatrixF& m,
                    std::int64_t seq_len, const CaptureFn& capture,
                    std::optional<LinearInput> stop_after, ExpertCapture expert_capture);

}  // namespace qshard
