// The CPU forward of the real stories260k checkpoint against the float64 reference in ../shared.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "qshard/eval/metrics.hpp"
#include "qshard/model/weight_source.hpp"
#include "raw_file.hpp"

namespace qshard {
namespace {

const std::filesystem::path kModel =
    std::filesystem::path(QSHARD_SHARED_DIR) / "models/stories260k";
const std::filesystem::path kData = std::filesystem::path(QSHARD_SHARED_DIR) / "data/stories260k";

#define REQUIRE_SHARED()                                      \
  if (!std::filesystem::exists(kModel / "model.safetensors")) \
  GTEST_SKIP() << kModel << " not found: the stories260k tests need ../shared beside the checkout"

using test::read_raw;

TEST(Stories260k, LogitsMatchTheFloat64Reference) {
  REQUIRE_SHARED();
  const std::vector<std::int32_t> tokens = read_raw<std::int32_t>(kModel / "reference_tokens.i32");
  const std::vector<float> reference = read_raw<float>(kModel / "reference_logits.f32");
  ASSERT_EQ(tokens.size(), 32u);
  ASSERT_EQ(reference.size(), 32u * 512u);
  const CausalLm model(*open_hf_model(kModel));
  const MatrixF logits = model.logits(tokens, 32);
  double max_diff = 0.0;
  for (std::size_t i = 0; i < reference.size(); ++i)
    max_diff = std::max(max_diff, std::abs(double(logits.data()[i]) - reference[i]));
  std::cout << "stories260k logits: max |qshard - float64 reference| = " << max_diff << '\n';
  EXPECT_LT(max_diff, 1e-4);
  EXPECT_NEAR(logits(0, 0), 1.97387386, 1e-4);
  EXPECT_NEAR(logits(31, 0), -1.55273810, 1e-4);
}

TEST(Stories260k, PerplexityReproducesTheReadme) {
  REQUIRE_SHARED();
  const CausalLm model(*open_hf_model(kModel));
  const TokenSet eval = read_tokens_i32(kData / "eval_256x256.i32", 256);
  const PerplexityResult p = perplexity(model, eval);
  std::cout << "stories260k perplexity " << p.perplexity << " over " << p.predictions
            << " predictions\n";
  EXPECT_EQ(p.predictions, 65280);
  EXPECT_NEAR(p.perplexity, 51.0546, 51.0546 * 1e-3);
  EXPECT_NEAR(p.mean_nll, 3.932896, 1e-3);
}

TEST(Stories260k, KlAgainstItselfIsZero) {
  REQUIRE_SHARED();
  const CausalLm model(*open_hf_model(kModel));
  TokenSet eval = read_tokens_i32(kData / "eval_256x256.i32", 256);
  eval.rows = 8;
  eval.ids.resize(8 * 256);
  const ComparisonResult c = compare_models(model, model, eval);
  EXPECT_EQ(c.mean_kl, 0.0);
  EXPECT_EQ(c.top1_agreement, 1.0);
  EXPECT_EQ(c.model.perplexity, c.reference.perplexity);
}

}  // namespace
}  // namespace qshard
