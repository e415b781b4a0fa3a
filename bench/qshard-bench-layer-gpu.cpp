// Benchmark of one whole decoder layer on one GPU (not a test): the steps qshard-quantize takes
// for a layer, with the calibration activations resident on the device:
//   for each true-sequential stage (q/k/v, o, gate/up, down): forward every unit of
//   batch_samples samples up to the stage's input, adding X^T X to device Hessian builders; the
//   exact Hessians expanded on the device; the factorisation; the GPTQ solve of the stage's
//   modules (fp32 weights uploaded); the quantized weights dequantized on the device into the
//   layer;
//   then the quantized layer's forward of every unit (the next layer's inputs).
// Weights are deterministic synthetic ones at the real shapes (model/synthetic_source.hpp),
// activations random N(0,1) in bf16. Wall-clock per phase after device synchronisation; medians
// of --repeats after one warm-up.
//
//   qshard-bench-layer-gpu [--model llama2-7b] [--samples 128] [--seq-len 2048]
//                          [--batch-samples 4] [--repeats 3] [--act-order on|off]
//                          [--true-sequential on|off] [--device 0]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "forward_kernels.hpp"
#include "qshard/backend/cuda/cuda_hessian.hpp"
#include "qshard/backend/cuda/cuda_layer.hpp"
#include "qshard/backend/cuda/cuda_solver.hpp"
#include "qshard/backend/cuda/device.hpp"
#include "qshard/backend/cuda_backend.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "random_kernels.hpp"

using namespace qshard;
using namespace qshard::cuda;

namespace {

struct Args {
  std::string model = "llama2-7b";
  std::int64_t samples = 128, seq_len = 2048, batch_samples = 4;
  int repeats = 3;
  bool act_order = false, true_sequential = true;
  int device = 0;
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "%s\nusage: qshard-bench-layer-gpu [--model NAME] [--samples N] [--seq-len N]\n"
               "       [--batch-samples N] [--repeats N] [--act-order on|off]\n"
               "       [--true-sequential on|off] [--device N]\n",
               problem.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage("missing value for " + flag);
    const std::string value = argv[++i];
    const auto on_off = [&]() {
      if (value != "on" && value != "off") usage("bad " + flag + " " + value);
      return value == "on";
    };
    if (flag == "--model")
      a.model = value;
    else if (flag == "--samples")
      a.samples = std::stoll(value);
    else if (flag == "--seq-len")
      a.seq_len = std::stoll(value);
    else if (flag == "--batch-samples")
      a.batch_samples = std::stoll(value);
    else if (flag == "--repeats")
      a.repeats = std::max(1, std::stoi(value));
    else if (flag == "--act-order")
      a.act_order = on_off();
    else if (flag == "--true-sequential")
      a.true_sequential = on_off();
    else if (flag == "--device")
      a.device = std::stoi(value);
    else
      usage("unknown flag " + flag);
  }
  if (a.samples % a.batch_samples != 0) usage("--samples must be a multiple of --batch-samples");
  return a;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Phases {
  double upload = 0.0;       // the layer's weights to the device (bf16)
  double forward = 0.0;      // stage forwards (without the Hessian products)
  double hessian = 0.0;      // X^T X products and limb sums (device time)
  double hessian_out = 0.0;  // exact limbs -> H (double, on the device)
  double factor = 0.0;       // damping + Cholesky + triangular inverse (+ act_order permutation)
  double solve = 0.0;        // GPTQ of the stage's modules (fp32 weights uploaded)
  double requant = 0.0;      // the quantized modules dequantized into the layer
  double final_forward = 0.0;
  double total = 0.0;
};

Phases run_layer(const Args& args, const ModelConfig& config, const WeightSource& source,
                 const RotaryTable& rope, const Backend& backend, const CudaSolver& solver,
                 const std::byte* hidden, std::byte* next) {
  const std::int64_t unit_tokens = args.batch_samples * args.seq_len;
  const std::int64_t units = args.samples / args.batch_samples;
  const std::size_t unit_bytes = static_cast<std::size_t>(unit_tokens * config.hidden_size) * 2;
  const LayerWeights weights = LayerWeights::load(source, 0);
  GptqOptions o;
  o.quant.bits = 4;
  o.quant.group_size = 128;
  o.act_order = args.act_order;
  Phases p;
  QSHARD_CUDA_CHECK(cudaDeviceSynchronize());
  const auto start = Clock::now();
  auto t = Clock::now();
  CudaLayer layer(args.device, config, weights, rope, DType::BF16);
  p.upload = seconds_since(t);

  std::vector<std::vector<LinearInput>> stages;
  if (args.true_sequential)
    stages = {{LinearInput::Attention},
              {LinearInput::AttentionOutput},
              {LinearInput::Mlp},
              {LinearInput::MlpDown}};
  else
    stages = {{LinearInput::Attention, LinearInput::AttentionOutput, LinearInput::Mlp,
               LinearInput::MlpDown}};
  DeviceBuffer<std::byte> scratch(unit_bytes);
  for (const auto& stage : stages) {
    std::map<LinearInput, std::unique_ptr<HessianBuilder>> builders;
    LayerTargets targets;
    for (const LinearInput input : stage) {
      builders[input] = backend.make_hessian(input_features(config, input));
      targets.hessians[static_cast<std::size_t>(input)] = builders[input].get();
    }
    t = Clock::now();
    for (std::int64_t u = 0; u < units; ++u)
      layer.forward_device(hidden + u * unit_bytes, scratch.data(), unit_tokens, args.seq_len,
                           targets, stage.back());
    QSHARD_CUDA_CHECK(cudaDeviceSynchronize());
    double hessian = 0.0;
    for (const auto& [input, b] : builders) hessian += b->add_seconds();
    p.forward += seconds_since(t) - hessian;
    p.hessian += hessian;

    for (const auto& [input, builder] : builders) {
      auto* device_builder = dynamic_cast<CudaHessianBuilder*>(builder.get());
      t = Clock::now();
      const DeviceBuffer<double> h = device_builder->hessian_device();
      p.hessian_out += seconds_since(t);
      t = Clock::now();
      const auto factor = solver.factorize_device(h.data(), device_builder->features(), o);
      QSHARD_CUDA_CHECK(cudaStreamSynchronize(solver.stream()));
      p.factor += seconds_since(t);
      const std::vector<std::int32_t> g_idx = solver.g_idx(*factor, o);
      for (const Linear l : kAllLinears) {
        if (input_of(l) != input) continue;
        t = Clock::now();
        DeviceBuffer<float> w(weights[l].size());
        w.upload(weights[l].data(), weights[l].size(), solver.stream());
        const DeviceQuantized q = solver.solve_resident(w.data(), weights[l].rows(), *factor, o);
        p.solve += seconds_since(t);
        t = Clock::now();
        layer.set_quantized(l, q, g_idx);
        p.requant += seconds_since(t);
      }
    }
  }
  t = Clock::now();
  for (std::int64_t u = 0; u < units; ++u)
    layer.forward_device(hidden + u * unit_bytes, next + u * unit_bytes, unit_tokens, args.seq_len);
  QSHARD_CUDA_CHECK(cudaDeviceSynchronize());
  p.final_forward = seconds_since(t);
  p.total = seconds_since(start);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "qshard-bench-layer-gpu: no CUDA device visible\n");
    return 1;
  }
  try {
    const DeviceGuard guard(args.device);
    cudaDeviceProp prop{};
    QSHARD_CUDA_CHECK(cudaGetDeviceProperties(&prop, args.device));
    const auto source = open_synthetic_model(args.model, 1);
    const ModelConfig& config = source->config();
    std::printf(
        "device %d: %s; layer of %s (hidden %lld, intermediate %lld, %lld heads, %lld kv)\n",
        args.device, prop.name, args.model.c_str(), static_cast<long long>(config.hidden_size),
        static_cast<long long>(config.intermediate_size),
        static_cast<long long>(config.num_attention_heads),
        static_cast<long long>(config.num_key_value_heads));
    std::printf(
        "%lld x %lld calibration tokens in units of %lld samples, bf16 activations; 4 bits, "
        "group 128, act_order %s, true_sequential %s\n",
        static_cast<long long>(args.samples), static_cast<long long>(args.seq_len),
        static_cast<long long>(args.batch_samples), args.act_order ? "on" : "off",
        args.true_sequential ? "on" : "off");
    const auto backend = make_cuda_backend(args.device);
    const auto& solver = dynamic_cast<const CudaSolver&>(backend->solver());
    const RotaryTable rope(config, args.seq_len);
    const std::size_t count =
        static_cast<std::size_t>(args.samples * args.seq_len * config.hidden_size);
    DeviceBuffer<std::byte> hidden(count * 2), next(count * 2);
    {
      const std::size_t chunk = std::size_t{1} << 26;
      DeviceBuffer<float> f32(chunk);
      for (std::size_t begin = 0; begin < count; begin += chunk) {
        const std::size_t n = std::min(chunk, count - begin);
        QSHARD_CUDA_CHECK(kernels::fill_normal(f32.data(), n, 17 + begin, 1.0f, nullptr));
        QSHARD_CUDA_CHECK(kernels::convert(f32.data(), DType::F32, hidden.data() + 2 * begin,
                                           DType::BF16, n, nullptr));
      }
      QSHARD_CUDA_CHECK(cudaDeviceSynchronize());
    }
    std::vector<Phases> runs;
    for (int r = 0; r <= args.repeats; ++r) {
      const Phases p =
          run_layer(args, config, *source, rope, *backend, solver, hidden.data(), next.data());
      std::printf(
          "%s %d: total %.3f s (upload %.3f, forward %.3f, hessian %.3f, H out %.3f, "
          "factor %.3f, solve %.3f, requant %.3f, final forward %.3f)\n",
          r == 0 ? "warm-up" : "run", r, p.total, p.upload, p.forward, p.hessian, p.hessian_out,
          p.factor, p.solve, p.requant, p.final_forward);
      std::fflush(stdout);
      if (r > 0) runs.push_back(p);
    }
    const auto med = [&](double Phases::*field) {
      std::vector<double> v;
      for (const Phases& p : runs) v.push_back(p.*field);
      return median(v);
    };
    std::size_t free_bytes = 0, total_bytes = 0;
    QSHARD_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    std::printf(
        "\nmedian of %d: whole layer %.3f s = upload %.3f + forward %.3f + hessian %.3f + "
        "H out %.3f + factor %.3f + solve %.3f + requant %.3f + final forward %.3f\n",
        args.repeats, med(&Phases::total), med(&Phases::upload), med(&Phases::forward),
        med(&Phases::hessian), med(&Phases::hessian_out), med(&Phases::factor), med(&Phases::solve),
        med(&Phases::requant), med(&Phases::final_forward));
    std::printf("device memory in use at the end: %.1f GiB of %.1f GiB\n",
                static_cast<double>(total_bytes - free_bytes) / (1 << 30),
                static_cast<double>(total_bytes) / (1 << 30));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qshard-bench-layer-gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
