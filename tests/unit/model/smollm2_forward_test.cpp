// The CPU forward of the real SmolLM2-135M (scripts/get-models.sh) against transformers' float32
// forward of the same folder (reference_logits.f32, written by scripts/reference_logits.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "qshard/eval/metrics.hpp"
#include "qshard/model/weight_source.hpp"
#include "raw_file.hpp"

namespace qshard {
namespace {

const std::filesystem::path kModel =
    std::filesystem::path(QSHARD_SOURCE_DIR) / "models/SmolLM2-135M-Instruct";

using test::read_raw;

TEST(SmolLM2, LogitsMatchTransformers) {
  if (!std::filesystem::exists(kModel / "reference_logits.f32"))
    GTEST_SKIP() << kModel << " not found: the SmolLM2 tests need bash scripts/get-models.sh";
  const std::vector<std::int32_t> tokens = read_raw<std::int32_t>(kModel / "reference_tokens.i32");
  const std::vector<float> reference = read_raw<float>(kModel / "reference_logits.f32");
  const std::int64_t vocab = 49152;
  ASSERT_GT(tokens.size(), 16u);
  ASSERT_EQ(reference.size(), tokens.size() * vocab);
  const CausalLm model(*open_hf_model(kModel));
  ASSERT_EQ(model.config().vocab_size, vocab);
  const auto length = static_cast<std::int64_t>(tokens.size());
  const MatrixF logits = model.logits(tokens, length);
  double max_diff = 0.0;
  double max_abs = 0.0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(logits.data()[i]) - reference[i]));
    max_abs = std::max(max_abs, std::abs(double(reference[i])));
  }
  // Both sides are float32 forwards of the same fp16 weights (30 layers, different summation
  // orders): the measured difference is ~1e-4 of the largest logit.
  std::cout << "SmolLM2 logits over " << length
            << " tokens: max |qshard - transformers| = " << max_diff << " (largest logit "
            << max_abs << ")\n";
  EXPECT_LT(max_diff, 1e-3 * max_abs);
  // The same greedy next token at every position.
  for (std::int64_t t = 0; t < length; ++t) {
    const float* row = logits.data() + t * vocab;
    const float* expected = reference.data() + t * vocab;
    EXPECT_EQ(std::max_element(row, row + vocab) - row,
              std::max_element(expected, expected + vocab) - expected)
        << "position " << t;
  }
}

}  // namespace
}  // namespace qshard
