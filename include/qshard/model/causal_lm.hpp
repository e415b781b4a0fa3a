#pragma once
// The whole model for evaluation: embedding, decoder layers, final norm and LM head (tied or not).
#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "qshard/model/decoder.hpp"

namespace qshard {

// Token embeddings of `tokens` as [tokens, hidden].
MatrixF embed_tokens(const MatrixF& embedding, std::span<const std::int32_t> tokens);

// Forwards `hidden` (whole samples of seq_len tokens) through one decoder layer: the CPU forward
// by default; a backend's (e.g. the GPU's) where the caller sets one.
using LayerRunner =
    std::function<MatrixF(const ModelConfig& config, const LayerWeights& weights,
                          const RotaryTable& rope, const MatrixF& hidden, std::int64_t seq_len)>;

class CausalLm {
 public:
  // Loads every layer into memory (evaluation models are small enough; the quantization pipeline
  // streams layers instead).
  explicit CausalLm(const WeightSource& source);
  const ModelConfig& config() const { return config_; }
  void set_layer_runner(LayerRunner runner) { runner_ = std::move(runner); }
  // Logits [samples * seq_len, vocab] of `samples` sequences of seq_len tokens each.
  MatrixF logits(std::span<const std::int32_t> tokens, std::int64_t seq_len) const;

 private:
  ModelConfig config_;
  MatrixF embedding_;
  std::vector<LayerWeights> layers_;
  MatrixF final_norm_;
  MatrixF lm_head_;  // copy of the embedding when tied
  LayerRunner runner_;
};

}  // namespace qshard
