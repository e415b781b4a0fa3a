// The decoder forward on the GPU against the CPU forward: one layer in fp32 (tight) and bf16
// (within bf16 rounding), Hessians fed on the device against CPU Hessians of the CPU's captures,
// stop_after, determinism, and the whole stories260k model (logits and perplexity).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "cuda_hessian.hpp"
#include "cuda_layer.hpp"
#include "gpu_test_support.hpp"
#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/eval/metrics.hpp"
#include "qshard/model/causal_lm.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/model/weight_source.hpp"

namespace qshard {
namespace {

using test::random_hidden;

double max_abs(const MatrixF& m) {
  double best = 0.0;
  for (const float v : m.values()) best = std::max(best, static_cast<double>(std::abs(v)));
  return best;
}

double max_abs_difference(const MatrixF& a, const MatrixF& b) {
  EXPECT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.cols(), b.cols());
  double best = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    best = std::max(best, static_cast<double>(std::abs(a.data()[i] - b.data()[i])));
  return best;
}

// ||a - b||_F / ||b||_F
double relative_error(const MatrixF& a, const MatrixF& b) {
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a.data()[i]) - b.data()[i];
    diff += d * d;
    norm += static_cast<double>(b.data()[i]) * b.data()[i];
  }
  return std::sqrt(diff / norm);
}

struct LayerRun {
  MatrixF out;
  std::vector<MatrixF> inputs;  // the four linear inputs in order
};

LayerRun run(ResidentLayer& layer, const MatrixF& hidden, std::int64_t seq) {
  LayerRun r;
  LayerTargets targets;
  targets.capture = [&](InputId, const MatrixF& x) { r.inputs.push_back(x); };
  r.out = layer.forward(hidden, seq, targets);
  return r;
}

// A tiny GQA layer (4 heads, 2 kv heads) with q/k/v bias, rotary over 48 positions (of the
// synthetic `preset`: qwen3-tiny adds per-head q/k RMSNorm and heads of 64 on a hidden size of
// 128).
struct TinyLayer {
  explicit TinyLayer(const std::string& preset = "tiny")
      : source(open_synthetic_model(preset, 11)), config(source->config()), rope(config, 48) {
    weights = LayerWeights::load(*source, 1);
    std::mt19937_64 rng(3);
    std::normal_distribution<float> normal(0.0f, 0.1f);
    for (const Linear l : {Linear::Q, Linear::K, Linear::V}) {
      auto& b = weights.bias[static_cast<std::size_t>(l)];
      b.resize(static_cast<std::size_t>(weights[l].rows()));
      for (float& v : b) v = normal(rng);
    }
  }
  std::unique_ptr<WeightSource> source;
  ModelConfig config;
  RotaryTable rope;
  LayerWeights weights;
};

TEST(CudaForward, Fp32LayerMatchesTheCpuForward) {
  QSHARD_REQUIRE_GPU();
  const TinyLayer t;
  const std::int64_t seq = 48, samples = 3;
  const MatrixF hidden = random_hidden(7, samples * seq, t.config.hidden_size);
  const auto cpu = make_cpu_backend()->load_layer(t.config, t.weights, t.rope);
  cuda::CudaLayer gpu(0, t.config, t.weights, t.rope, DType::F32);
  const LayerRun a = run(gpu, hidden, seq);
  const LayerRun b = run(*cpu, hidden, seq);
  const double diff = max_abs_difference(a.out, b.out), scale = max_abs(b.out);
  std::printf("[fp32 layer] max |gpu - cpu| = %.3g (max |cpu| = %.3g)\n", diff, scale);
  EXPECT_LT(diff, 1e-5 * std::max(1.0, scale));
  ASSERT_EQ(a.inputs.size(), 4u);
  ASSERT_EQ(b.inputs.size(), 4u);
  for (std::size_t k = 0; k < 4; ++k) {
    const double d = max_abs_difference(a.inputs[k], b.inputs[k]);
    std::printf("[fp32 layer] linear input %zu: max |gpu - cpu| = %.3g\n", k, d);
    EXPECT_LT(d, 1e-5 * std::max(1.0, max_abs(b.inputs[k]))) << "linear input " << k;
  }
}

// Qwen3: the per-head q/k RMSNorm on the device (rows of head_dim values, before rotary).
TEST(CudaForward, Qwen3LayerWithPerHeadQkNormsMatchesTheCpuForward) {
  QSHARD_REQUIRE_GPU();
  const TinyLayer t("qwen3-tiny");
  ASSERT_TRUE(t.config.qk_norm);
  const std::int64_t seq = 48;
  const MatrixF hidden = random_hidden(8, 2 * seq, t.config.hidden_size);
  const auto cpu = make_cpu_backend()->load_layer(t.config, t.weights, t.rope);
  for (const DType dtype : {DType::F32, DType::BF16}) {
    cuda::CudaLayer gpu(0, t.config, t.weights, t.rope, dtype);
    const LayerRun a = run(gpu, hidden, seq);
    const LayerRun b = run(*cpu, hidden, seq);
    const double err = relative_error(a.out, b.out);
    std::printf("[qwen3 layer, %s] relative error of the output = %.3g\n",
                std::string(dtype_name(dtype)).c_str(), err);
    EXPECT_LT(err, dtype == DType::F32 ? 1e-6 : 1e-2) << dtype_name(dtype);
    for (std::size_t k = 0; k < 4; ++k)
      EXPECT_LT(relative_error(a.inputs[k], b.inputs[k]), dtype == DType::F32 ? 1e-6 : 2e-2)
          << "linear input " << k;
  }
}

TEST(CudaForward, Fp16LayerTracksTheCpuForwardWithinFp16Rounding) {
  QSHARD_REQUIRE_GPU();
  const TinyLayer t;
  const std::int64_t seq = 48;
  const MatrixF hidden = random_hidden(12, 2 * seq, t.config.hidden_size);
  const auto cpu = make_cpu_backend()->load_layer(t.config, t.weights, t.rope);
  cuda::CudaLayer gpu(0, t.config, t.weights, t.rope, DType::F16);
  const LayerRun a = run(gpu, hidden, seq);
  const LayerRun b = run(*cpu, hidden, seq);
  const double err = relative_error(a.out, b.out);
  std::printf("[fp16 layer] relative error of the output = %.3g\n", err);
  EXPECT_LT(err, 2e-3);  // fp16 keeps 11 bits: ~5e-4 per rounding
  for (std::size_t k = 0; k < 4; ++k) EXPECT_LT(relative_error(a.inputs[k], b.inputs[k]), 4e-3);
}

TEST(CudaForward, Bf16LayerTracksTheCpuForwardWithinBf16Rounding) {
  QSHARD_REQUIRE_GPU();
  const TinyLayer t;
  const std::int64_t seq = 48, samples = 2;
  const MatrixF hidden = random_hidden(8, samples * seq, t.config.hidden_size);
  const auto cpu = make_cpu_backend()->load_layer(t.config, t.weights, t.rope);
  cuda::CudaLayer gpu(0, t.config, t.weights, t.rope, DType::BF16);
  const LayerRun a = run(gpu, hidden, seq);
  const LayerRun b = run(*cpu, hidden, seq);
  const double err = relative_error(a.out, b.out);
  std::printf("[bf16 layer] relative error of the output = %.3g\n", err);
  EXPECT_LT(err, 1e-2);  // bf16 keeps 8 bits: ~4e-3 per rounding
  for (std::size_t k = 0; k < 4; ++k) {
    const double e = relative_error(a.inputs[k], b.inputs[k]);
    std::printf("[bf16 layer] linear input %zu: relative error %.3g\n", k, e);
    EXPECT_LT(e, 2e-2) << "linear input " << k;
  }
}

TEST(CudaForward, DeviceHessiansMatchCpuHessiansOfTheCpuCaptures) {
  QSHARD_REQUIRE_GPU();
  const TinyLayer t;
  const std::int64_t seq = 48, samples = 2;
  const auto gpu_backend = make_cuda_backend(0);
  const auto cpu_backend = make_cpu_backend();
  const auto gpu = gpu_backend->load_layer(t.config, t.weights, t.rope);
  const auto cpu = cpu_backend->load_layer(t.config, t.weights, t.rope);
  std::array<std::unique_ptr<HessianBuilder>, 4> on_gpu, on_cpu;
  LayerTargets gpu_targets, cpu_targets;
  const std::array<std::int64_t, 4> features = {
      t.config.hidden_size, t.config.q_dim(), t.config.hidden_size, t.weights[Linear::Gate].rows()};
  for (std::size_t i = 0; i < 4; ++i) {
    on_gpu[i] = gpu_backend->make_hessian(features[i]);
    on_cpu[i] = cpu_backend->make_hessian(features[i]);
    gpu_targets.hessians[static_cast<LinearInput>(i)] = on_gpu[i].get();
    cpu_targets.hessians[static_cast<LinearInput>(i)] = on_cpu[i].get();
  }
  for (std::uint64_t unit = 0; unit < 3; ++unit) {
    const MatrixF hidden = random_hidden(20 + unit, samples * seq, t.config.hidden_size);
    gpu->forward(hidden, seq, gpu_targets);
    cpu->forward(hidden, seq, cpu_targets);
  }
  test::RepeatCommunicator one;
  for (std::size_t i = 0; i < 4; ++i) {
    on_gpu[i]->all_reduce(one);
    const MatrixD a = on_gpu[i]->hessian(), b = on_cpu[i]->hessian();
    double diff = 0.0, scale = 0.0;
    for (std::size_t k = 0; k < a.size(); ++k) {
      diff = std::max(diff, std::abs(a.data()[k] - b.data()[k]));
      scale = std::max(scale, std::abs(b.data()[k]));
    }
    std::printf("[hessian %zu] max |gpu - cpu| / max |cpu| = %.3g, device time %.3f ms\n", i,
                diff / scale, 1e3 * on_gpu[i]->add_seconds());
    // The synthetic model is bf16: the GPU forwards in bf16 and the Hessian GEMM takes bf16.
    EXPECT_LT(diff / scale, 2e-2) << "linear input " << i;
    EXPECT_GT(on_gpu[i]->add_seconds(), 0.0);
  }
}

TEST(CudaForward, StopsAfterTheRequestedInputAndIsDeterministic) {
  QSHARD_REQUIRE_GPU();
  const TinyLayer t;
  const std::int64_t seq = 48;
  const MatrixF hidden = random_hidden(9, 2 * seq, t.config.hidden_size);
  cuda::CudaLayer gpu(0, t.config, t.weights, t.rope, DType::BF16);
  std::vector<LinearInput> seen;
  LayerTargets targets;
  targets.capture = [&](InputId input, const MatrixF&) { seen.push_back(input.kind); };
  const MatrixF stopped = gpu.forward(hidden, seq, targets, LinearInput::Mlp);
  EXPECT_EQ(stopped.size(), 0u);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.back(), LinearInput::Mlp);
  const MatrixF a = gpu.forward(hidden, seq), b = gpu.forward(hidden, seq);
  EXPECT_EQ(a, b) << "the same unit forwarded twice differs";
  // After refresh() the layer uses the new weights (a zero down projection: out = h).
  LayerWeights changed = t.weights;
  cuda::CudaLayer second(0, t.config, changed, t.rope, DType::F32);
  const MatrixF before = second.forward(hidden, seq);
  std::fill(changed[Linear::Down].values().begin(), changed[Linear::Down].values().end(), 0.0f);
  second.refresh(Linear::Down);
  const MatrixF after = second.forward(hidden, seq);
  const auto cpu = make_cpu_backend()->load_layer(t.config, changed, t.rope);
  const MatrixF expected = cpu->forward(hidden, seq);
  EXPECT_GT(max_abs_difference(before, after), 1e-3);
  EXPECT_LT(max_abs_difference(after, expected), 1e-4);
}

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("QSHARD_SHARED_DIR")) return env;
  return QSHARD_SHARED_DIR;
}

TEST(CudaForward, Stories260kLogitsAndPerplexityMatchTheCpu) {
  QSHARD_REQUIRE_GPU();
  const std::filesystem::path model = shared_dir() / "models/stories260k";
  const std::filesystem::path data = shared_dir() / "data/stories260k/eval_256x256.i32";
  if (!std::filesystem::exists(model / "model.safetensors"))
    GTEST_SKIP() << model
                 << " not found: set QSHARD_SHARED_DIR or put ../shared beside the checkout";
  const auto source = open_hf_model(model);
  const CausalLm cpu(*source);
  CausalLm gpu(*source);
  const auto backend = make_cuda_backend(0);
  gpu.set_layer_runner([&](const ModelConfig& c, const LayerWeights& w, const RotaryTable& rope,
                           const MatrixF& hidden, std::int64_t seq) {
    return backend->forward_layer(c, w, rope, hidden, seq);
  });
  TokenSet tokens = read_tokens_i32(data, 256);
  tokens.rows = 64;  // 64 rows x 255 predictions
  tokens.ids.resize(static_cast<std::size_t>(tokens.rows * tokens.cols));
  const MatrixF a = gpu.logits(tokens.rows_span(0, 4), 256);
  const MatrixF b = cpu.logits(tokens.rows_span(0, 4), 256);
  const double diff = max_abs_difference(a, b);
  std::printf("[stories260k] max |logits gpu - cpu| = %.3g over 4 x 256 positions\n", diff);
  EXPECT_LT(diff, 1e-2);
  const PerplexityResult pg = perplexity(gpu, tokens), pc = perplexity(cpu, tokens);
  const double rel = std::abs(pg.perplexity - pc.perplexity) / pc.perplexity;
  std::printf("[stories260k] perplexity gpu %.6f cpu %.6f (relative %.3g, %lld predictions)\n",
              pg.perplexity, pc.perplexity, rel, static_cast<long long>(pc.predictions));
  EXPECT_LT(rel, 1e-3);
}

}  // namespace
}  // namespace qshard

namespace qshard {
namespace {

// The device-only path of a layer step (bench/qshard-bench-layer-gpu.cpp): device Hessian ->
// device factorisation -> resident solve -> dequantized into the layer, against the host path.
TEST(CudaForward, DeviceQuantizedPathEqualsTheHostPath) {
  QSHARD_REQUIRE_GPU();
  const TinyLayer t;
  const std::int64_t seq = 48;
  const auto backend = make_cuda_backend(0);
  const auto& solver = dynamic_cast<const cuda::CudaSolver&>(backend->solver());
  LayerWeights host = t.weights;
  cuda::CudaLayer device_layer(0, t.config, t.weights, t.rope, DType::F32);
  cuda::CudaLayer host_layer(0, t.config, host, t.rope, DType::F32);
  auto builder = backend->make_hessian(t.config.hidden_size);
  LayerTargets targets;
  targets.hessians[LinearInput::Attention] = builder.get();
  for (std::uint64_t unit = 0; unit < 4; ++unit)
    device_layer.forward(random_hidden(40 + unit, 2 * seq, t.config.hidden_size), seq, targets,
                         LinearInput::Attention);
  auto& cuda_builder = dynamic_cast<cuda::CudaHessianBuilder&>(*builder);
  GptqOptions o;
  o.quant.bits = 3;
  o.quant.group_size = 32;
  o.act_order = true;
  const auto from_host = solver.factorize_device(cuda_builder.hessian(), o);
  const cuda::DeviceBuffer<double> h = cuda_builder.hessian_device();
  const auto from_device = solver.factorize_device(h.data(), t.config.hidden_size, o);
  EXPECT_EQ(from_device->perm, from_host->perm);
  std::vector<float> u_host(from_host->hinv_upper.size()), u_device(u_host.size());
  from_host->hinv_upper.download(u_host.data(), u_host.size(), solver.stream());
  from_device->hinv_upper.download(u_device.data(), u_device.size(), solver.stream());
  QSHARD_CUDA_CHECK(cudaStreamSynchronize(solver.stream()));
  EXPECT_EQ(u_host, u_device) << "factor of the device Hessian differs from the host one's";

  for (const Linear l : {Linear::Q, Linear::K, Linear::V}) {
    cuda::DeviceBuffer<float> w(t.weights[l].size());
    w.upload(t.weights[l].data(), t.weights[l].size(), solver.stream());
    const cuda::DeviceQuantized q =
        solver.solve_resident(w.data(), t.weights[l].rows(), *from_device, o);
    device_layer.set_quantized(l, q, solver.g_idx(*from_device, o));
    host[l] = solver.download(q, *from_device, o).dequantize();
    host_layer.refresh(l);
  }
  const MatrixF hidden = random_hidden(50, 2 * seq, t.config.hidden_size);
  const MatrixF a = device_layer.forward(hidden, seq), b = host_layer.forward(hidden, seq);
  EXPECT_EQ(a, b) << "device-dequantized layer differs from the host-dequantized one";
  EXPECT_GT(max_abs_difference(
                a, make_cpu_backend()->forward_layer(t.config, t.weights, t.rope, hidden, seq)),
            1e-3)
      << "quantization changed nothing";
}

}  // namespace
}  // namespace qshard

namespace qshard {
namespace {

// Units kept on the device between layers: the same results as host units through forward().
TEST(CudaForward, DeviceUnitsGiveTheSameResultsAsHostUnits) {
  QSHARD_REQUIRE_GPU();
  const TinyLayer t;
  const std::int64_t seq = 48;
  const auto backend = make_cuda_backend(0);
  std::vector<MatrixF> host;
  for (std::uint64_t u = 0; u < 3; ++u)
    host.push_back(random_hidden(60 + u, (u == 2 ? 1 : 2) * seq, t.config.hidden_size));
  const auto store = backend->store_units(t.config, host);
  ASSERT_EQ(store->size(), 3u);
  const auto layer = backend->load_layer(t.config, t.weights, t.rope);
  const auto next = layer->forward_all(*store, seq);
  auto builder = backend->make_hessian(t.config.q_dim());
  auto reference = backend->make_hessian(t.config.q_dim());
  LayerTargets on_store, on_host;
  on_store.hessians[LinearInput::AttentionOutput] = builder.get();
  on_host.hessians[LinearInput::AttentionOutput] = reference.get();
  for (std::size_t u = 0; u < host.size(); ++u) {
    // bf16 storage: the host unit rounded to bf16 is what the store holds.
    MatrixF rounded = host[u];
    for (float& v : rounded.values()) v = bf16_to_f32(f32_to_bf16(v));
    EXPECT_EQ(store->unit(u), rounded) << "unit " << u;
    EXPECT_EQ(next->unit(u), layer->forward(rounded, seq)) << "unit " << u;
    layer->forward_unit(*store, u, seq, on_store, LinearInput::AttentionOutput);
    layer->forward(rounded, seq, on_host, LinearInput::AttentionOutput);
  }
  test::RepeatCommunicator one;
  builder->all_reduce(one);
  reference->all_reduce(one);
  EXPECT_EQ(builder->hessian(), reference->hessian());
  EXPECT_THROW(
      make_cpu_backend()->load_layer(t.config, t.weights, t.rope)->forward_all(*store, seq), Error);
}

}  // namespace
}  // namespace qshard
