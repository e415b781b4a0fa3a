// Issue 14's faults and bad inputs against the apps (docs/RELIABILITY.md lists them): absurd
// config sizes, model problems found at start-up before OUT.parts exists, NaN weights, --seq_len
// against the token file's rows, SIGTERM to mpirun and a stopped rank.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "qshard/io/inspect.hpp"
#include "qshard/io/safetensors.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "support.hpp"

namespace qshard::test {
namespace {
namespace fs = std::filesystem;

const std::string kJob = "--samples 8 --seq_len 32 --batch_samples 2 --backend cpu --quiet ";

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The synthetic tiny model (4 layers, hidden 128, untied head) as tensors and a config.json.
struct Model {
  nlohmann::json config;
  std::map<std::string, Tensor> tensors;
};

Model tiny_model() {
  const auto source = open_synthetic_model("tiny", 0);
  Model m{nlohmann::json::parse(to_json(source->config())), {}};
  for (const std::string& name : expected_tensor_names(source->config())) {
    const MatrixF values = source->load(name);
    const bool vector = has(name, "norm") || name.ends_with(".bias");
    const Shape shape = vector ? Shape{values.cols()} : Shape{values.rows(), values.cols()};
    m.tensors[name] = Tensor::from_f32(values.values(), shape, DType::BF16);
  }
  return m;
}

fs::path write(const Model& m, const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << m.config.dump(2);
  std::vector<NamedTensor> named;
  for (const auto& [name, tensor] : m.tensors) named.push_back({name, &tensor});
  write_safetensors(dir / "model.safetensors", named);
  return dir;
}

// Raw little-endian int32 ids, `rows` x `cols`, below 100.
std::string write_ids(const fs::path& path, std::int64_t rows, std::int64_t cols) {
  std::ofstream out(path, std::ios::binary);
  for (std::int64_t i = 0; i < rows * cols; ++i) {
    const auto id = static_cast<std::int32_t>(i * 7 % 100);
    out.write(reinterpret_cast<const char*>(&id), sizeof id);
  }
  return path.string();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(Faults, AbsurdConfigSizesAreRefusedUpFrontByEveryApp) {
  TempDir dir("qshard-faults-sizes");
  const std::string ids = write_ids(dir / "ids.i32", 2, 32);
  for (const std::int64_t layers : {std::int64_t{1'000'000'000}, std::int64_t{1'000'000'000'000}}) {
    Model m = tiny_model();
    m.config["num_hidden_layers"] = layers;
    const std::string model = write(m, dir / ("layers" + std::to_string(layers))).string();
    const std::string expected = "num_hidden_layers is " + std::to_string(layers);
    const RunResult quantize =
        run(quantize_command(2, "--model " + model + " " + kJob + "--out " + dir / "q.h5"), 120);
    EXPECT_NE(quantize.exit_code, 0);
    EXPECT_NE(quantize.exit_code, 124) << "hang: " << quantize.output;
    EXPECT_TRUE(has(quantize.output, expected)) << quantize.output;
    EXPECT_FALSE(fs::exists(dir / "q.h5.parts"));
    const RunResult inspect = run(app("qshard-inspect") + " --model " + model, 60);
    EXPECT_NE(inspect.exit_code, 0);
    EXPECT_TRUE(has(inspect.output, expected)) << inspect.output;
    const RunResult eval =
        run(app("qshard-eval") + " --model " + model + " --tokens " + ids + " --seq_len 32", 60);
    EXPECT_NE(eval.exit_code, 0);
    EXPECT_TRUE(has(eval.output, expected)) << eval.output;
  }
  // Below the caps, a directory is bounded by what its files hold.
  Model m = tiny_model();
  m.config["num_hidden_layers"] = 4000;
  const std::string model = write(m, dir / "layers4000").string();
  const RunResult quantize =
      run(quantize_command(2, "--model " + model + " " + kJob + "--out " + dir / "q.h5"), 120);
  EXPECT_TRUE(has(quantize.output, "the weight files hold 4 decoder layers")) << quantize.output;
  const RunResult eval =
      run(app("qshard-eval") + " --model " + model + " --tokens " + ids + " --seq_len 32", 60);
  EXPECT_TRUE(has(eval.output, "the weight files hold 4 decoder layers")) << eval.output;
  // A synthetic model's config has only the caps.
  m.config["num_hidden_layers"] = 4;
  m.config["hidden_size"] = 1'000'000'000'000;
  std::ofstream(dir / "huge.json") << m.config.dump();
  const RunResult synthetic = run(quantize_command(2, "--model synthetic:" + dir / "huge.json" +
                                                          " " + kJob + "--out " + dir / "s.h5"),
                                  120);
  EXPECT_NE(synthetic.exit_code, 0);
  EXPECT_TRUE(has(synthetic.output, "hidden_size is 1000000000000")) << synthetic.output;
}

// Each problem is reported within seconds, before OUT.parts exists, naming the tensor.
TEST(Faults, ModelProblemsAreFoundAtStartUpBeforeAnyLayer) {
  TempDir dir("qshard-faults-startup");
  const std::string late = linear_weight_name(3, Linear::Gate);  // the last layer
  const std::vector<std::pair<std::string, std::function<void(Model&)>>> cases = {
      {"'model.norm.weight' is missing",
       [](Model& m) { m.tensors.erase(std::string(kFinalNormName)); }},
      {"'lm_head.weight' is missing", [](Model& m) { m.tensors.erase(std::string(kLmHeadName)); }},
      {"tensor '" + late + "' is I32",
       [&](Model& m) { m.tensors[late] = Tensor(DType::I32, m.tensors[late].shape()); }},
      {"has shape [128, 352], the config implies [352, 128]",
       [&](Model& m) {
         m.tensors[late] = Tensor(DType::BF16, {128, 352});
       }},
      {"--allow-extra-tensors", [](Model& m) { m.config["num_hidden_layers"] = 2; }},
  };
  for (const auto& [needle, edit] : cases) {
    Model m = tiny_model();
    edit(m);
    const fs::path model = write(m, dir / "model");
    const auto start = std::chrono::steady_clock::now();
    const RunResult r =
        run(quantize_command(2, "--model " + model.string() + " " + kJob + "--out " + dir / "o.h5"),
            120);
    EXPECT_NE(r.exit_code, 0) << needle;
    EXPECT_TRUE(has(r.output, needle)) << r.output;
    // Every rank finds it; rank 0 prints it once for all.
    const std::size_t first = r.output.find("qshard-quantize: error");
    EXPECT_NE(first, std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("qshard-quantize: error", first + 1), std::string::npos)
        << "printed once:\n"
        << r.output;
    EXPECT_FALSE(fs::exists(dir / "o.h5.parts")) << needle;
    EXPECT_LT(seconds_since(start), 60.0) << needle;
    fs::remove_all(model);
  }
  // A model with more layers than its config: quantized truncated only when asked for (INI).
  Model m = tiny_model();
  m.config["num_hidden_layers"] = 2;
  const fs::path model = write(m, dir / "model");
  std::ofstream(dir / "job.ini") << "allow_extra_tensors = true\n";
  const RunResult allowed =
      run(quantize_command(2, "--config " + dir / "job.ini" + " --model " + model.string() + " " +
                                  kJob + "--out " + dir / "o.h5"));
  EXPECT_EQ(allowed.exit_code, 0) << allowed.output;
}

TEST(Faults, NonFiniteWeightIsNamedByLayerModuleAndFile) {
  TempDir dir("qshard-faults-nan");
  Model m = tiny_model();
  const std::string name = linear_weight_name(2, Linear::Up);
  std::vector<float> values = m.tensors[name].to_f32();
  values[5 * 128 + 7] = std::numeric_limits<float>::quiet_NaN();
  m.tensors[name] = Tensor::from_f32(values, m.tensors[name].shape(), DType::BF16);
  const fs::path model = write(m, dir / "model");
  const RunResult r =
      run(quantize_command(2, "--model " + model.string() + " " + kJob + "--out " + dir / "o.h5"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.output, "layer 2: up_proj: \"" + (model / "model.safetensors").string() +
                                "\": tensor '" + name +
                                "' has a non-finite value (nan) at row "
                                "5, column 7"))
      << r.output;
}

TEST(Faults, SeqLenMustEqualTheTokenFileRows) {
  TempDir dir("qshard-faults-seq-len");
  const std::string calib = write_ids(dir / "calib_8x32.i32", 8, 32);
  const RunResult quantize = run(quantize_command(
      2, "--model synthetic:tiny --calib " + calib +
             " --samples 8 --seq_len 16 --backend cpu --quiet --out " + dir / "o.h5"));
  EXPECT_NE(quantize.exit_code, 0);
  EXPECT_TRUE(has(quantize.output, "has rows of 32 tokens, but seq_len is 16: give --seq_len 32"))
      << quantize.output;
  EXPECT_TRUE(has(quantize.output, "--calib_sampling random")) << quantize.output;
  const RunResult eval =
      run(app("qshard-eval") + " --model synthetic:tiny --tokens " + calib + " --seq_len 16");
  EXPECT_NE(eval.exit_code, 0);
  EXPECT_TRUE(has(eval.output, "give --seq-len 32")) << eval.output;
  if (!shared_available()) GTEST_SKIP() << "../shared not found: the stories260k case skips";
  const fs::path data = shared_dir() / "data/stories260k";
  const RunResult stories = run(quantize_command(
      1, "--model " + (shared_dir() / "models/stories260k").string() + " --calib " +
             (data / "calib_128x256.i32").string() +
             " --samples 8 --seq_len 128 --backend cpu --quiet --out " + dir / "s.h5"));
  EXPECT_NE(stories.exit_code, 0);
  EXPECT_TRUE(has(stories.output, "give --seq_len 256")) << stories.output;
}

// A job of a few seconds a layer, started in the background under mpirun: `then` runs (in bash,
// with $mp the mpirun pid) once its OUT.parts/job.json exists; the output of all of it comes back.
RunResult run_and_interfere(const TempDir& dir, const std::string& extra, const std::string& then) {
  const std::string job = quantize_command(2,
                                           "--model synthetic:tiny --samples 64 --seq_len 256 "
                                           "--batch_samples 4 --backend cpu --quiet " +
                                               extra + " --out " + dir / "o.h5");
  const std::string script = job + " & mp=$!; for i in $(seq 600); do [ -e " + dir / "o.h5.parts" +
                             "/job.json ] && break; sleep 0.1; done; sleep 1; kids=$(pgrep -P "
                             "$mp); " +
                             then + "; wait $mp; rc=$?; kill -KILL $kids 2>/dev/null; exit $rc";
  std::ofstream(dir / "interfere.sh") << script << '\n';
  return run("bash " + dir / "interfere.sh", 180);
}

TEST(Faults, SigtermToMpirunSaysSoOnStderr) {
  TempDir dir("qshard-faults-sigterm");
  const RunResult r = run_and_interfere(dir, "", "kill -TERM $mp");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << r.output;
  EXPECT_TRUE(has(r.output, "stopped by SIGTERM; the layers finished so far stay in " +
                                dir / "o.h5.parts" +
                                ": run the same command with --resume to continue"))
      << r.output;
}

TEST(Faults, AStoppedRankEndsTheJobNamingTheLayerAndStage) {
  TempDir dir("qshard-faults-stopped");
  const auto start = std::chrono::steady_clock::now();
  const RunResult r =
      run_and_interfere(dir, "--collective_timeout 3", "kill -STOP $(pgrep -n -P $mp)");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << r.output;
  EXPECT_TRUE(has(r.output, "): layer ")) << r.output;
  EXPECT_TRUE(has(r.output, " stage (")) << r.output;
  EXPECT_TRUE(has(r.output, "for the other ranks (--collective_timeout 3): a rank has stopped"))
      << r.output;
  EXPECT_LT(seconds_since(start), 120.0);
}

}  // namespace
}  // namespace qshard::test
