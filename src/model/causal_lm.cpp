#include "qshard/model/causal_lm.hpp"

#include "qshard/core/error.hpp"

namespace qshard {

MatrixF embed_tokens(const MatrixF& embedding, std::span<const std::int32_t> tokens) {
  MatrixF out(static_cast<std::int64_t>(tokens.size()), embedding.cols());
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const std::int32_t id = tokens[t];
    require(id >= 0 && id < embedding.rows(), "token id ", id, " at position ", t,
            " outside the vocabulary [0, ", embedding.rows(), ")");
    std::copy(embedding.data() + id * embedding.cols(),
              embedding.data() + (id + 1) * embedding.cols(),
              out.data() + static_cast<std::int64_t>(t) * embedding.cols());
  }
  return out;
}

CausalLm::CausalLm(const WeightSource& source)
    : config_(source.config()),
      embedding_(source.load(std::string(kEmbedName))),
      final_norm_(source.load(std::string(kFinalNormName))),
      lm_head_(source.load(std::string(kLmHeadName))) {
  for (std::int64_t l = 0; l < config_.num_hidden_layers; ++l)
    layers_.push_back(LayerWeights::load(source, l));
}

MatrixF CausalLm::logits(std::span<const std::int32_t> tokens, std::int64_t seq_len) const {
  const RotaryTable rope(config_, seq_len);
  MatrixF hidden = embed_tokens(embedding_, tokens);
  for (const LayerWeights& layer : layers_)
    hidden = runner_ ? runner_(config_, layer, rope, hidden, seq_len)
                     : forward_layer(config_, layer, rope, hidden, seq_len);
  rms_norm(hidden, final_norm_, config_.rms_norm_eps);
  return linear_forward_blocks(hidden, lm_head_, {}, seq_len);  // per sample, as the layers
}

}  // namespace qshard
