// qshard-export's GPTQ format read back: every tensor equals the checkpoint's, for bits 2/3/4/8 x
// sym/asym x act_order, and the written bytes decode bit by bit to the checkpoint's codes.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "export_test_support.hpp"
#include "qshard/export/export_job.hpp"
#include "qshard/export/gptq_module.hpp"
#include "qshard/io/inspect.hpp"
#include "qshard/io/safetensors.hpp"
#include "qshard/model/checkpoint_source.hpp"
#include "qshard/model/gptq_source.hpp"

namespace qshard::test {
namespace {

struct Case {
  int bits;
  bool sym;
  bool act_order;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return str(info.param.bits, "bit_", info.param.sym ? "sym" : "asym", "_",
             info.param.act_order ? "actorder" : "ordered");
}

ExportSummary export_dir(const fs::path& checkpoint, const fs::path& out,
                         GptqZeroFormat zeros = GptqZeroFormat::V1,
                         ExportFormat format = ExportFormat::Gptq,
                         std::uint64_t shard = 2000000000) {
  ExportOptions o;
  o.checkpoint = checkpoint.string();
  o.out = out.string();
  o.zero_format = zeros;
  o.format = format;
  o.max_shard_bytes = shard;
  std::ostringstream log;
  return run_export(o, log);
}

// Every tensor the config implies, bitwise equal between the two sources.
void expect_same_tensors(const WeightSource& expected, const WeightSource& actual) {
  for (const std::string& name : expected_tensor_names(expected.config())) {
    ASSERT_TRUE(actual.contains(name)) << name;
    EXPECT_TRUE(expected.load(name) == actual.load(name)) << name << " differs";
  }
}

class GptqRoundTrip : public testing::TestWithParam<Case> {};

TEST_P(GptqRoundTrip, DequantizedWeightsAndFloatTensorsEqualTheCheckpoints) {
  const Case p = GetParam();
  TempDir dir;
  CheckpointSpec spec;
  spec.bits = p.bits;
  spec.sym = p.sym;
  spec.act_order = p.act_order;
  spec.seed = static_cast<std::uint64_t>(p.bits * 4 + p.sym * 2 + p.act_order);
  write_random_checkpoint(dir / "q.h5", spec);
  for (const GptqZeroFormat zeros : {GptqZeroFormat::V1, GptqZeroFormat::V2}) {
    const fs::path out = dir / std::string(gptq_format_name(zeros));
    const ExportSummary summary = export_dir(dir / "q.h5", out, zeros);
    EXPECT_EQ(summary.quantized_modules, 14);
    EXPECT_EQ(summary.float_modules, 0);
    const auto checkpoint = open_checkpoint_model(dir / "q.h5");
    const auto exported = open_hf_model(out);  // detects the GPTQ config itself
    EXPECT_NE(exported->describe().find("GPTQ"), std::string::npos);
    expect_same_tensors(*checkpoint, *exported);

    // The packed parts themselves, not only their product.
    const Checkpoint ckpt(dir / "q.h5");
    const GptqConfig config = *read_gptq_config(out);
    EXPECT_EQ(config.bits, p.bits);
    EXPECT_EQ(config.sym, p.sym);
    EXPECT_EQ(config.desc_act, p.act_order);
    EXPECT_EQ(config.zero_format, zeros);
    const SafetensorsModel model(out);
    for (std::int64_t l = 0; l < ckpt.layer_count(); ++l) {
      const LayerRecord layer = ckpt.layer(l);
      for (const ModuleRecord& m : layer.modules) {
        const std::string prefix = str("model.layers.", l, ".", linear_parent(m.module.linear), ".",
                                       linear_name(m.module.linear));
        const QuantizedWeight back = read_gptq_module(model, config, *config.module(prefix), prefix,
                                                      m.weight.rows(), m.weight.cols());
        EXPECT_EQ(back.codes, m.weight.codes) << prefix;
        EXPECT_EQ(back.zeros, m.weight.zeros) << prefix;
        EXPECT_EQ(back.scales, m.weight.scales) << prefix;
        EXPECT_EQ(back.g_idx, m.weight.g_idx) << prefix;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BitsSymActOrder, GptqRoundTrip,
                         testing::Values(Case{2, false, false}, Case{2, false, true},
                                         Case{2, true, false}, Case{2, true, true},
                                         Case{3, false, false}, Case{3, false, true},
                                         Case{3, true, false}, Case{3, true, true},
                                         Case{4, false, false}, Case{4, false, true},
                                         Case{4, true, false}, Case{4, true, true},
                                         Case{8, false, false}, Case{8, false, true},
                                         Case{8, true, false}, Case{8, true, true}),
                         case_name);

// The safetensors bytes decoded one bit at a time (export_test_support.hpp), never through
// qshard's unpacking: qweight [in * b / 32, out] with each output's codes as a little-end stream
// down the rows (3-bit codes straddling words), qzeros [groups, out * b / 32] streamed along the
// row holding zero - 1 (v1) or the zero (v2), fp16 scales [groups, out], int32 g_idx.
class GptqBytes : public testing::TestWithParam<int> {};

TEST_P(GptqBytes, DecodeBitByBitToTheCheckpointsCodesZerosAndScales) {
  const int bits = GetParam();
  TempDir dir;
  CheckpointSpec spec;
  spec.bits = bits;
  spec.act_order = true;
  spec.seed = 40 + static_cast<std::uint64_t>(bits);
  write_random_checkpoint(dir / "q.h5", spec);
  for (const GptqZeroFormat zeros : {GptqZeroFormat::V1, GptqZeroFormat::V2}) {
    const fs::path out = dir / std::string(gptq_format_name(zeros));
    export_dir(dir / "q.h5", out, zeros);
    const SafetensorsFile file(out / "model.safetensors");
    EXPECT_EQ(file.metadata().at("format"), "pt");
    const Checkpoint ckpt(dir / "q.h5");
    for (std::int64_t l = 0; l < ckpt.layer_count(); ++l) {
      for (const ModuleRecord& m : ckpt.layer(l).modules) {
        const QuantizedWeight& w = m.weight;
        const std::int64_t out_f = w.rows(), in_f = w.cols(), groups = w.groups();
        const std::string prefix = str("model.layers.", l, ".", linear_parent(m.module.linear), ".",
                                       linear_name(m.module.linear));
        const TensorView qweight = file.view(prefix + ".qweight");
        ASSERT_EQ(qweight.dtype, DType::I32);
        ASSERT_EQ(qweight.shape, (Shape{in_f * bits / 32, out_f})) << prefix;
        for (std::int64_t o = 0; o < out_f; ++o)
          for (std::int64_t c = 0; c < in_f; ++c)
            ASSERT_EQ(stream_value(qweight.bytes, out_f, o, c, bits), w.codes(o, c))
                << prefix << " code (" << o << ", " << c << ")";
        const TensorView qzeros = file.view(prefix + ".qzeros");
        ASSERT_EQ(qzeros.dtype, DType::I32);
        ASSERT_EQ(qzeros.shape, (Shape{groups, out_f * bits / 32})) << prefix;
        const std::int32_t offset = zeros == GptqZeroFormat::V1 ? 1 : 0;
        for (std::int64_t g = 0; g < groups; ++g)
          for (std::int64_t o = 0; o < out_f; ++o)
            ASSERT_EQ(row_stream_value(qzeros.bytes, qzeros.shape[1], g, o, bits),
                      static_cast<std::uint32_t>(w.zeros(o, g) - offset))
                << prefix << " zero (" << g << ", " << o << ")";
        const TensorView scales = file.view(prefix + ".scales");
        ASSERT_EQ(scales.dtype, DType::F16);
        ASSERT_EQ(scales.shape, (Shape{groups, out_f}));
        for (std::int64_t g = 0; g < groups; ++g)
          for (std::int64_t o = 0; o < out_f; ++o) {
            const std::size_t i = static_cast<std::size_t>(2 * (g * out_f + o));
            const auto half =
                static_cast<std::uint16_t>(std::to_integer<unsigned>(scales.bytes[i]) |
                                           (std::to_integer<unsigned>(scales.bytes[i + 1]) << 8));
            ASSERT_EQ(f16_to_f32(half), w.scales(o, g)) << prefix;
          }
        const TensorView g_idx = file.view(prefix + ".g_idx");
        ASSERT_EQ(g_idx.dtype, DType::I32);
        ASSERT_EQ(g_idx.shape, Shape{in_f});
        for (std::int64_t c = 0; c < in_f; ++c)
          ASSERT_EQ(static_cast<std::int32_t>(word_at(g_idx.bytes, static_cast<std::size_t>(c))),
                    w.g_idx[static_cast<std::size_t>(c)]);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Bits, GptqBytes, testing::Values(2, 3, 4, 8));

TEST(GptqBytes, ThreeBitCodesStraddleWords) {
  // Code 10 of a column occupies stream bits 30..32: the top two bits of word 0 and bit 0 of
  // word 1. Checked on a hand-made module so a wrong straddle cannot hide in random data.
  QuantizedWeight w;
  w.bits = 3;
  w.group_size = -1;
  w.codes = Matrix<std::uint8_t>(32, 32, 0);
  w.codes(5, 10) = 0b101;
  w.codes(5, 21) = 0b110;  // bits 63..65: top bit of word 1, two bits of word 2
  w.scales = MatrixF(32, 1, 0.5f);
  w.zeros = Matrix<std::int32_t>(32, 1, 4);
  w.g_idx.assign(32, 0);
  const GptqModuleTensors t = pack_gptq_module(w, GptqZeroFormat::V1, "m");
  ASSERT_EQ(t.qweight.shape(), (Shape{3, 32}));
  const auto words = t.qweight.as<std::int32_t>();
  const auto word = [&](std::int64_t row) {
    return static_cast<std::uint32_t>(words[static_cast<std::size_t>(row * 32 + 5)]);
  };
  EXPECT_EQ(word(0), 0b01u << 30);
  EXPECT_EQ(word(1), 0b1u);  // bit 31 (the low bit of 0b110) stays 0
  EXPECT_EQ(word(2), 0b11u);
  // zeros 4 - 1 = 3 for every output: 0b011 repeated, 32 values in 3 words.
  const auto zeros = t.qzeros.as<std::int32_t>();
  ASSERT_EQ(t.qzeros.shape(), (Shape{1, 3}));
  EXPECT_EQ(static_cast<std::uint32_t>(zeros[0]), 0b11011011011011011011011011011011u);
}

TEST(GptqExport, SymmetricZerosAreTheMidpointAndV1StoresItMinusOne) {
  for (const int bits : {2, 3, 4, 8}) {
    QuantizedWeight w;
    w.bits = bits;
    w.group_size = -1;
    w.codes = Matrix<std::uint8_t>(32, 32, 0);
    w.scales = MatrixF(32, 1, 1.0f);
    w.zeros = Matrix<std::int32_t>(32, 1, 1 << (bits - 1));
    w.g_idx.assign(32, 0);
    const GptqModuleTensors t = pack_gptq_module(w, GptqZeroFormat::V1, "m");
    const auto bytes = t.qzeros.bytes();
    for (std::int64_t o = 0; o < 32; ++o)
      EXPECT_EQ(row_stream_value(bytes, t.qzeros.shape()[1], 0, o, bits), (1u << (bits - 1)) - 1u)
          << bits << "-bit output " << o;
  }
}

}  // namespace
}  // namespace qshard::test
