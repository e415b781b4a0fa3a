// Mixtures of experts on the GPU against the CPU backend: one sparse layer of each family (Mixtral,
// Qwen2-MoE with its shared expert, Qwen3-MoE) forwarded in fp32 (tight) and bf16 (within bf16
// rounding) with every expert's inputs compared by owner, --moe_calibration all, the experts'
// Hessians accumulated on the device against the CPU's, and whole quantize jobs: the same experts'
// token counts, objectives tracking the CPU's, two GPU runs bitwise equal.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "cuda_layer.hpp"
#include "gpu_test_support.hpp"
#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/pipeline/job_options.hpp"
#include "qshard/pipeline/quantize_job.hpp"

namespace qshard {
namespace {

constexpr const char* kFamilies[] = {"mixtral-tiny", "qwen2-moe-tiny", "qwen3-moe-tiny"};

using test::random_hidden;

// ||a - b||_F / ||b||_F
double relative_error(const MatrixF& a, const MatrixF& b) {
  EXPECT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.cols(), b.cols());
  if (a.size() != b.size()) return INFINITY;
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a.data()[i]) - b.data()[i];
    diff += d * d;
    norm += static_cast<double>(b.data()[i]) * b.data()[i];
  }
  return norm == 0.0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

struct SparseLayer {
  explicit SparseLayer(const std::string& preset)
      : source(open_synthetic_model(preset, 5)), config(source->config()), rope(config, 32) {
    weights = LayerWeights::load(*source, 0);
  }
  std::unique_ptr<WeightSource> source;
  ModelConfig config;
  RotaryTable rope;
  LayerWeights weights;
};

struct LayerRun {
  MatrixF out;
  std::map<InputId, MatrixF> inputs;  // by owner: an expert's inputs are its own
};

LayerRun run(ResidentLayer& layer, const MatrixF& hidden, std::int64_t seq, ExpertCapture experts) {
  LayerRun r;
  LayerTargets targets;
  targets.experts = experts;
  targets.capture = [&](InputId input, const MatrixF& x) {
    EXPECT_EQ(r.inputs.count(input), 0u) << "an input delivered twice";
    r.inputs[input] = x;
  };
  r.out = layer.forward(hidden, seq, targets);
  return r;
}

void expect_same_inputs(const LayerRun& gpu, const LayerRun& cpu, double tolerance) {
  ASSERT_EQ(gpu.inputs.size(), cpu.inputs.size());
  for (const auto& [input, x] : cpu.inputs) {
    const auto it = gpu.inputs.find(input);
    ASSERT_NE(it, gpu.inputs.end()) << "input of kind " << static_cast<int>(input.kind)
                                    << ", owner " << input.expert << " missing on the GPU";
    EXPECT_LT(relative_error(it->second, x), tolerance)
        << "input of kind " << static_cast<int>(input.kind) << ", owner " << input.expert;
  }
}

TEST(CudaMoe, SparseLayersMatchTheCpuForwardForEveryFamily) {
  QSHARD_REQUIRE_GPU();
  for (const std::string preset : kFamilies) {
    SCOPED_TRACE(preset);
    const SparseLayer t(preset);
    ASSERT_TRUE(t.weights.sparse());
    const std::int64_t seq = 32;
    const MatrixF hidden = random_hidden(17, 3 * seq, t.config.hidden_size);
    const auto cpu = make_cpu_backend()->load_layer(t.config, t.weights, t.rope);
    for (const ExpertCapture experts : {ExpertCapture::Routed, ExpertCapture::All}) {
      const LayerRun b = run(*cpu, hidden, seq, experts);
      for (const DType dtype : {DType::F32, DType::BF16}) {
        cuda::CudaLayer gpu(0, t.config, t.weights, t.rope, dtype);
        const LayerRun a = run(gpu, hidden, seq, experts);
        const double err = relative_error(a.out, b.out);
        std::printf("[%s, %s, %s experts] relative error of the output %.3g, %zu inputs\n",
                    preset.c_str(), std::string(dtype_name(dtype)).c_str(),
                    experts == ExpertCapture::All ? "all" : "routed", err, a.inputs.size());
        EXPECT_LT(err, dtype == DType::F32 ? 1e-6 : 1e-2);
        expect_same_inputs(a, b, dtype == DType::F32 ? 1e-6 : 2e-2);
        // The same unit again: bitwise the same (routing, gathers and sums in a fixed order).
        EXPECT_EQ(gpu.forward(hidden, seq), a.out);
      }
    }
  }
}

TEST(CudaMoe, ExpertHessiansOnTheDeviceMatchTheCpu) {
  QSHARD_REQUIRE_GPU();
  const SparseLayer t("qwen2-moe-tiny");
  const auto gpu_backend = make_cuda_backend(0);
  const auto cpu_backend = make_cpu_backend();
  const auto gpu = gpu_backend->load_layer(t.config, t.weights, t.rope);
  const auto cpu = cpu_backend->load_layer(t.config, t.weights, t.rope);
  std::map<InputId, std::unique_ptr<HessianBuilder>> on_gpu, on_cpu;
  LayerTargets gpu_targets, cpu_targets;
  const std::vector<std::int32_t> owners = {0, 1, 5, kSharedExpert};
  for (const std::int32_t owner : owners)
    for (const LinearInput kind : {LinearInput::Mlp, LinearInput::MlpDown}) {
      const InputId input{kind, owner};
      const std::int64_t features = input_features(t.config, input);
      on_gpu[input] = gpu_backend->make_hessian(features);
      on_cpu[input] = cpu_backend->make_hessian(features);
      gpu_targets.hessians[input] = on_gpu[input].get();
      cpu_targets.hessians[input] = on_cpu[input].get();
    }
  const std::int64_t seq = 32;
  for (std::uint64_t unit = 0; unit < 3; ++unit) {
    const MatrixF hidden = random_hidden(40 + unit, 2 * seq, t.config.hidden_size);
    gpu->forward(hidden, seq, gpu_targets);
    cpu->forward(hidden, seq, cpu_targets);
  }
  test::RepeatCommunicator one;
  for (const auto& [input, builder] : on_cpu) {
    HessianBuilder& g = *on_gpu.at(input);
    g.all_reduce(one);
    builder->all_reduce(one);
    // Routing in bf16 can only differ from the CPU's on near ties: the counts must agree here.
    EXPECT_EQ(g.tokens(), builder->tokens()) << "owner " << input.expert;
    if (builder->tokens() == 0) continue;
    const MatrixD a = g.hessian(), b = builder->hessian();
    double diff = 0.0, scale = 0.0;
    for (std::size_t k = 0; k < a.size(); ++k) {
      diff = std::max(diff, std::abs(a.data()[k] - b.data()[k]));
      scale = std::max(scale, std::abs(b.data()[k]));
    }
    std::printf(
        "[expert hessian kind %d owner %d] %lld tokens, max |gpu - cpu| / max |cpu| = %.3g\n",
        static_cast<int>(input.kind), input.expert, static_cast<long long>(builder->tokens()),
        diff / scale);
    EXPECT_LT(diff / scale, 2e-2) << "owner " << input.expert;  // bf16 model, bf16 Hessian GEMM
  }
  EXPECT_GT(on_cpu.at({LinearInput::Mlp, kSharedExpert})->tokens(), 0);
}

// One quantize job in this process (one rank).
JobResult quantize(const std::string& preset, const std::string& backend_kind,
                   const std::filesystem::path& out, const std::string& extra = "") {
  std::vector<std::string> args = {"--model",         "synthetic:" + preset,
                                   "--samples",       "8",
                                   "--seq_len",       "32",
                                   "--batch_samples", "2",
                                   "--bits",          "4",
                                   "--group_size",    "32",
                                   "--backend",       backend_kind,
                                   "--quiet",         "--force",
                                   "--out",           out.string()};
  if (!extra.empty()) {
    std::istringstream words(extra);
    for (std::string w; words >> w;) args.push_back(w);
  }
  const ParsedOptions parsed = parse_job_options(args);
  SelfCommunicator comm;
  const auto backend = backend_kind == "cuda" ? make_cuda_backend(0) : make_cpu_backend();
  std::ostringstream log;
  return run_quantize_job(*parsed.options, comm, *backend, "moe gpu test", log);
}

TEST(CudaMoe, QuantizeJobsTrackTheCpuAndRepeatBitwise) {
  QSHARD_REQUIRE_GPU();
  const auto dir = std::filesystem::temp_directory_path() / "qshard-gpu-moe";
  std::filesystem::create_directories(dir);
  for (const std::string preset : kFamilies) {
    for (const std::string extra : {"", "--moe_calibration all"}) {
      SCOPED_TRACE(preset + " " + extra);
      const JobResult g1 = quantize(preset, "cuda", dir / "g1.h5", extra);
      const JobResult g2 = quantize(preset, "cuda", dir / "g2.h5", extra);
      const JobResult c = quantize(preset, "cpu", dir / "c.h5", extra);
      ASSERT_TRUE(g1.completed && g2.completed && c.completed);
      const double gpu_ratio = g1.objective_gptq / g1.objective_rtn;
      const double cpu_ratio = c.objective_gptq / c.objective_rtn;
      std::printf("[%s %s] gptq/rtn objective: gpu %.4f, cpu %.4f\n", preset.c_str(), extra.c_str(),
                  gpu_ratio, cpu_ratio);
      EXPECT_LT(gpu_ratio, 1.0);
      EXPECT_NEAR(gpu_ratio, cpu_ratio, 0.02 * cpu_ratio);
      EXPECT_EQ(g1.objective_gptq, g2.objective_gptq);
      const Checkpoint a(dir / "g1.h5"), b(dir / "g2.h5"), cpu_checkpoint(dir / "c.h5");
      EXPECT_EQ(a.content_hash(), b.content_hash()) << "two GPU runs differ";
      const ModelConfig& config = a.model_config();
      for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
        const LayerRecord x = a.layer(l), y = cpu_checkpoint.layer(l);
        ASSERT_EQ(x.modules.size(), y.modules.size());
        for (std::size_t m = 0; m < x.modules.size(); ++m) {
          EXPECT_EQ(x.modules[m].module, y.modules[m].module);
          EXPECT_EQ(x.modules[m].method, y.modules[m].method);
          // The GPU forwards the bf16 model in bf16, the CPU in fp32: near ties route apart, a
          // few tokens per expert (the CPU's on fp32 activations: the forward tests above).
          const auto gpu_tokens = static_cast<double>(x.modules[m].calibration_tokens);
          const auto cpu_tokens = static_cast<double>(y.modules[m].calibration_tokens);
          EXPECT_NEAR(gpu_tokens, cpu_tokens, 0.15 * cpu_tokens + 2.0)
              << checkpoint_module_name(config, x.modules[m].module);
          if (x.modules[m].module.expert < 0) {
            EXPECT_EQ(gpu_tokens, cpu_tokens);
          }
        }
      }
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qshard
