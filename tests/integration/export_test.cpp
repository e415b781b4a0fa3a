// qshard-export and qshard-eval --logits-out end to end: the apps as users (and the Python interop
// tests) run them.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qshard/io/safetensors.hpp"
#include "support.hpp"

namespace qshard::test {
namespace {
namespace fs = std::filesystem;

// The JSON line qshard-eval --json prints (the last line of its output).
nlohmann::json eval_json(const std::string& args) {
  const RunResult r = run(app("qshard-eval") + " --json " + args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const std::size_t start = r.output.rfind('{');
  return nlohmann::json::parse(r.output.substr(start == std::string::npos ? 0 : start));
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

TEST(Export, Stories260kAt4BitsKeepsTheMlpInFloatAndTheCheckpointsPerplexity) {
  if (!shared_available())
    GTEST_SKIP() << "../shared/models/stories260k not found: the stories260k tests need the shared "
                    "data beside the checkout";
  TempDir dir("qshard-export-stories");
  const fs::path model = shared_dir() / "models/stories260k";
  const std::string tokens = " --tokens " +
                             (shared_dir() / "data/stories260k/eval_256x256.i32").string() +
                             " --seq_len 256 --max_rows 32";
  const std::string quantize =
      app("qshard-quantize") + " --model " + model.string() + " --calib " +
      (shared_dir() / "data/stories260k/calib_128x256.i32").string() +
      " --samples 32 --seq_len 256 --bits 4 --group_size 32 --backend cpu --quiet";
  // Symmetric zeros in the v1 layout; asymmetric ones (zeros of 0 possible) in v2.
  for (const auto& [quant, format] : {std::pair<std::string, std::string>{" --sym", "gptq"},
                                      std::pair<std::string, std::string>{"", "gptq_v2"}}) {
    const std::string h5 = dir / (format + ".h5"), out = dir / format;
    ASSERT_EQ(run(quantize + quant + " --out " + h5).exit_code, 0);
    const RunResult exported = run(app("qshard-export") + " --checkpoint " + h5 + " --out " + out +
                                   " --model " + model.string() + " --checkpoint-format " + format);
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    for (const char* kind : {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      EXPECT_NE(exported.output.find(std::string(kind) + " of layers 0-4: written in floating"),
                std::string::npos)
          << exported.output;

    const nlohmann::json config = read_json(fs::path(out) / "config.json");
    const nlohmann::json& q = config.at("quantization_config");
    EXPECT_EQ(q["bits"], 4);
    EXPECT_EQ(q["group_size"], 32);
    EXPECT_EQ(q["sym"], quant == " --sym");
    EXPECT_EQ(q["checkpoint_format"], format);
    EXPECT_EQ(config["bos_token_id"], 1);  // the source's own config.json
    for (const char* kind : {"gate_proj", "up_proj", "down_proj"})
      EXPECT_TRUE(q["dynamic"].contains(str("-:model\\.layers\\.\\d+\\.mlp\\.", kind, "$")))
          << q.dump();
    EXPECT_EQ(q["modules_in_block_to_quantize"],
              nlohmann::json::parse(R"([["self_attn.q_proj", "self_attn.k_proj",
                                         "self_attn.v_proj"], ["self_attn.o_proj"]])"));
    const SafetensorsModel st(out);
    EXPECT_TRUE(st.contains("model.layers.4.mlp.down_proj.weight"));
    EXPECT_FALSE(st.contains("model.layers.4.mlp.down_proj.qweight"));
    EXPECT_TRUE(st.contains("model.layers.4.self_attn.o_proj.qweight"));
    EXPECT_FALSE(st.contains("lm_head.weight"));  // tied

    const double reference = eval_json("--checkpoint " + h5 + tokens)["perplexity"];
    const double read_back = eval_json("--model " + out + tokens)["perplexity"];
    EXPECT_NEAR(read_back, reference, 1e-6 * reference) << format;
    const RunResult inspect = run(app("qshard-inspect") + " --model " + out);
    ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
    EXPECT_NE(inspect.output.find("20 modules packed, 15 in floating point"), std::string::npos)
        << inspect.output;
    EXPECT_EQ(inspect.output.find("missing tensors"), std::string::npos) << inspect.output;
    EXPECT_EQ(inspect.output.find("unrecognised"), std::string::npos) << inspect.output;
  }
}

TEST(Export, CommandLineContract) {
  TempDir dir("qshard-export-cli");
  const RunResult quantized =
      run(quantize_command(1,
                           "--model synthetic:tiny --samples 4 --seq_len 16 --batch_samples 2 "
                           "--bits 3 --sym --backend cpu --quiet --out " +
                               dir / "t.h5"));
  ASSERT_EQ(quantized.exit_code, 0) << quantized.output;
  const std::string exporter = app("qshard-export") + " --checkpoint " + dir / "t.h5";
  // Option names with - or _.
  RunResult r =
      run(exporter + " --out " + dir / "a" + " --max_shard_size 300KB --checkpoint_format gptq");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "a/model.safetensors.index.json"));
  r = run(exporter + " --out " + dir / "b" + " --max-shard-size 1GB --format float");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "b/model.safetensors"));
  // Failures: exit 1, a message naming the problem, nothing that looks complete.
  const auto fails = [&](const std::string& args, const std::string& needle) {
    const RunResult f = run(exporter + " " + args);
    EXPECT_EQ(f.exit_code, 1) << args;
    EXPECT_NE(f.output.find(needle), std::string::npos) << args << "\n" << f.output;
  };
  fails("--out " + dir / "a", "not empty (give --force");
  fails("--out " + dir / "c --format int4", "expected gptq or float");
  fails("--out " + dir / "c --max-shard-size lots", "invalid size 'lots'");
  fails("--out " + dir / "c --checkpoint-format awq", "unsupported checkpoint_format 'awq'");
  fails("--out /proc/qshard-no-such/c", "cannot create output directory");
  EXPECT_FALSE(fs::exists(dir / "c"));
  EXPECT_FALSE(fs::exists(dir / "c.tmp"));
  r = run(exporter + " --out " + dir / "a --force");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// The logits file holds every position of every evaluated window, in order: the perplexity
// recomputed from it equals the one qshard-eval reports.
TEST(Export, EvalLogitsOutHoldsTheEvaluatedLogits) {
  TempDir dir("qshard-logits");
  const std::int64_t rows = 6, cols = 24, window = 8, max_rows = 5, vocab = 1024;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>((i * 37) % 1000);
  {
    std::ofstream f(dir / "ids.i32", std::ios::binary);
    f.write(reinterpret_cast<const char*>(ids.data()),
            static_cast<std::streamsize>(ids.size() * sizeof(std::int32_t)));
  }
  const nlohmann::json report =
      eval_json("--model synthetic:tiny --tokens " + dir / "ids.i32" + " --seq_len 24 --window 8" +
                " --max_rows 5 --logits-out " + dir / "l.f32");
  const std::int64_t windows = max_rows * (cols / window);
  EXPECT_EQ(report["logits_shape"], nlohmann::json::array({windows * window, vocab}));
  ASSERT_EQ(fs::file_size(dir / "l.f32"),
            static_cast<std::uintmax_t>(windows * window * vocab * 4));
  EXPECT_FALSE(fs::exists(dir / "l.f32.tmp"));
  std::vector<float> logits(static_cast<std::size_t>(windows * window * vocab));
  std::ifstream f(dir / "l.f32", std::ios::binary);
  f.read(reinterpret_cast<char*>(logits.data()),
         static_cast<std::streamsize>(logits.size() * sizeof(float)));
  double nll = 0.0;
  std::int64_t predictions = 0;
  for (std::int64_t w = 0; w < windows; ++w)
    for (std::int64_t t = 0; t + 1 < window; ++t) {
      const float* row = logits.data() + (w * window + t) * vocab;
      double max_value = row[0], total = 0.0;
      for (std::int64_t v = 0; v < vocab; ++v) max_value = std::max(max_value, double(row[v]));
      for (std::int64_t v = 0; v < vocab; ++v) total += std::exp(double(row[v]) - max_value);
      const std::int64_t next_column = (w % (cols / window)) * window + t + 1;
      const std::int32_t next =
          ids[static_cast<std::size_t>((w / (cols / window)) * cols + next_column)];
      nll -= double(row[next]) - max_value - std::log(total);
      ++predictions;
    }
  EXPECT_EQ(report["predictions"], predictions);
  EXPECT_NEAR(nll / double(predictions), report["mean_nll"].get<double>(), 1e-9);
}

}  // namespace
}  // namespace qshard::test
