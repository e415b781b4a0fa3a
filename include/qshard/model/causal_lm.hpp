#pragma once
// The whole model for evaluation: embedding, decoder layers, final norm and LM head (tied or not).
#include <cstdint>
#include <span>
#include <vector>

#include "qshard/model/decoder.hpp"

namespace qshard {

// Token embeddings of `tokens` as [tokens, hidden].
MatrixF embed_tokens(const MatrixF& embedding, std::span<const std::int32_t> tokens);

class CausalLm {
 public:
  // Loads every layer into memory (evaluation models are small enough; the quantization pipeline
  // streams layers instead).
  explicit CausalLm(const WeightSource& source);
  const ModelConfig& config() const { return config_; }
  // Logits [samples * seq_len, vocab] of `samples` sequences of seq_len tokens each.
  MatrixF logits(std::span<const std::int32_t> tokens, std::int64_t seq_len) const;

 private:
  ModelConfig config_;
  MatrixF embedding_;
  std::vector<LayerWeights> layers_;
  MatrixF final_norm_;
  MatrixF lm_head_;  // copy of the embedding when tied
};

}  // namespace qshard
