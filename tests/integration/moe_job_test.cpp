// qshard-quantize on mixtures of experts end to end: every family's tiny preset bitwise the same on
// 1, 2 and 4 ranks (experts dealt to owner ranks, their Hessians reduced to the owner) and in
// expert batches, experts under their Hugging Face names with the calibration tokens each saw,
// --moe_calibration all, and an expert no token reaches.
#include <gtest/gtest.h>

#include "qshard/io/checkpoint.hpp"
#include "support.hpp"

namespace qshard::test {
namespace {

constexpr std::int64_t kSamples = 8, kSeqLen = 32;

std::string job(const std::string& preset) {
  return str("--model synthetic:", preset, " --samples ", kSamples, " --seq_len ", kSeqLen,
             " --batch_samples 2 --backend cpu --bits 4 --group_size 32 --quiet ");
}

// Sums of the calibration tokens of layer `l`'s routed experts' gate modules, and checks of the
// others: every dense module and the shared expert saw every token.
std::int64_t routed_tokens(const Checkpoint& checkpoint, std::int64_t l) {
  const ModelConfig& c = checkpoint.model_config();
  const LayerRecord layer = checkpoint.layer(l);
  std::int64_t routed = 0;
  for (const ModuleRecord& m : layer.modules) {
    if (m.module.expert >= 0) {
      if (m.module.linear == Linear::Gate) routed += m.calibration_tokens;
    } else {
      EXPECT_EQ(m.calibration_tokens, kSamples * kSeqLen) << checkpoint_module_name(c, m.module);
    }
  }
  return routed;
}

TEST(MoeJob, EveryFamilyQuantizesIdenticallyOn1And2And4Ranks) {
  for (const std::string preset : {"mixtral-tiny", "qwen2-moe-tiny", "qwen3-moe-tiny"}) {
    SCOPED_TRACE(preset);
    TempDir dir("qshard-moe-ranks");
    for (const int ranks : {1, 2, 4}) {
      const RunResult r =
          run(quantize_command(ranks, job(preset) + "--out " + dir / str("r", ranks, ".h5")));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    // Experts in batches of 3 per forward pass (each rank holding 3 experts' partial Hessians).
    ASSERT_EQ(
        run(quantize_command(2, job(preset) + "--expert_batch 3 --out " + dir / "b3.h5")).exit_code,
        0);
    EXPECT_EQ(compare_quantized_tensors(dir / "r1.h5", dir / "r2.h5"), "");
    EXPECT_EQ(compare_quantized_tensors(dir / "r1.h5", dir / "r4.h5"), "");
    EXPECT_EQ(compare_quantized_tensors(dir / "r1.h5", dir / "b3.h5"), "");

    const Checkpoint checkpoint(dir / "r1.h5");
    const ModelConfig& c = checkpoint.model_config();
    ASSERT_TRUE(c.is_moe());
    for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::vector<ModuleId> modules = layer_modules(c, l);
      ASSERT_EQ(checkpoint.layer(l).modules.size(), modules.size());
      if (!c.sparse_layer(l)) {  // qwen2-moe-tiny's layer 1
        EXPECT_EQ(modules.size(), 7u);
        continue;
      }
      EXPECT_EQ(routed_tokens(checkpoint, l), kSamples * kSeqLen * c.moe.experts_per_token);
      for (const ModuleRecord& m : checkpoint.layer(l).modules)
        EXPECT_EQ(m.method, "gptq") << checkpoint_module_name(c, m.module);
    }
    // The experts under their Hugging Face paths in the layer groups.
    const h5::Group layer = checkpoint.file().root().open_group("layers/00000");
    const std::string expert =
        c.model_type == "mixtral" ? "block_sparse_moe.experts.3.w2" : "mlp.experts.3.down_proj";
    EXPECT_TRUE(layer.contains(expert)) << expert;
    EXPECT_TRUE(layer.contains(router_path(c)));
    EXPECT_EQ(layer.contains("mlp.shared_expert.up_proj"), c.model_type == "qwen2_moe");
  }
}

// qshard-inspect --write_synthetic writes a mixture of experts as a Hugging Face directory (the
// shared-expert gate as [1, hidden]) that quantizes like the model generated on the fly.
TEST(MoeJob, SyntheticMixtureWrittenToDiskQuantizesLikeTheGeneratedOne) {
  TempDir dir("qshard-moe-written");
  const std::string model = dir / "qwen2-moe";
  const RunResult written =
      run(app("qshard-inspect") + " --write-synthetic qwen2-moe-tiny --seed 5 --out " + model);
  ASSERT_EQ(written.exit_code, 0) << written.output;
  const std::string args =
      str(" --samples ", kSamples, " --seq_len ", kSeqLen, " --backend cpu --quiet --out ");
  const RunResult disk = run(quantize_command(2, "--model " + model + args + dir / "disk.h5"));
  ASSERT_EQ(disk.exit_code, 0) << disk.output;
  ASSERT_EQ(run(quantize_command(1, "--model synthetic:qwen2-moe-tiny --model_seed 5" + args +
                                        dir / "generated.h5"))
                .exit_code,
            0);
  EXPECT_EQ(compare_quantized_tensors(dir / "disk.h5", dir / "generated.h5"), "");
}

TEST(MoeJob, AllTokensReachEveryExpertsHessiansIdenticallyOnAnyRankCount) {
  TempDir dir("qshard-moe-all");
  const std::string args = job("mixtral-tiny") + "--moe_calibration all ";
  for (const int ranks : {1, 2})
    ASSERT_EQ(
        run(quantize_command(ranks, args + "--out " + dir / str("a", ranks, ".h5"))).exit_code, 0);
  EXPECT_EQ(compare_quantized_tensors(dir / "a1.h5", dir / "a2.h5"), "");
  const Checkpoint all(dir / "a1.h5");
  EXPECT_EQ(routed_tokens(all, 0), kSamples * kSeqLen * all.model_config().moe.num_experts);
  // Different Hessians: different codes than the routed job's.
  ASSERT_EQ(run(quantize_command(1, job("mixtral-tiny") + "--out " + dir / "routed.h5")).exit_code,
            0);
  EXPECT_NE(compare_quantized_tensors(dir / "a1.h5", dir / "routed.h5"), "");
}

TEST(MoeJob, AnExpertNoTokenReachesIsRoundedToNearestWithAWarning) {
  TempDir dir("qshard-moe-rare");
  // 2 tokens, each routed to 2 of 8 experts: at least 4 experts see nothing.
  const RunResult r = run(quantize_command(
      2,
      "--model synthetic:mixtral-tiny --samples 1 --seq_len 2 --backend cpu --bits 4 "
      "--group_size 32 --quiet --out " +
          dir / "q.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Printed once (rank 0), also with --quiet.
  EXPECT_NE(r.output.find("warning: layer 0: 8 expert(s) saw fewer than 128 calibration tokens"),
            std::string::npos)
      << r.output;
  const Checkpoint checkpoint(dir / "q.h5");
  std::int64_t rounded = 0, solved = 0;
  for (const ModuleRecord& m : checkpoint.layer(0).modules) {
    if (m.module.expert < 0) continue;
    EXPECT_EQ(m.method, m.calibration_tokens == 0 ? "rtn" : "gptq");
    (m.calibration_tokens == 0 ? rounded : solved) += 1;
  }
  EXPECT_GE(rounded, 4 * 3);
  EXPECT_GE(solved, 3);
}

}  // namespace
}  // namespace qshard::test
