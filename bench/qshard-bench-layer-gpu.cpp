// Benchmark of one whole decoder layer on one GPU (not a test): qshard-quantize's own layer step
// (pipeline/layer_quantizer.cpp: quantize_layer on the CUDA backend, one rank) with the
// calibration activations resident on the device:
//   load: the layer's weights uploaded (bf16 for the forward, fp32 for the solve);
//   per true-sequential stage (q/k/v, o, gate/up, down): forward every unit of batch_samples
//   samples up to the stage's input, adding X^T X to device Hessian builders; the exact Hessians
//   expanded on the device; one factorisation per input; GPTQ, RTN and both objectives of every
//   module on the device; the quantized modules dequantized into the layer;
//   then the quantized layer's forward of every unit (the next layer's inputs).
// What qshard-quantize adds per layer is reading or generating the weights (ahead, on another
// thread) and writing the layer file (behind). Weights are deterministic synthetic ones at the
// real shapes (model/synthetic_source.hpp), activations random N(0,1) in bf16. Wall-clock per
// stage (LayerTimings); medians of --repeats after one warm-up.
//
//   qshard-bench-layer-gpu [--model llama2-7b] [--samples 128] [--seq-len 2048]
//                          [--batch-samples 4] [--repeats 3] [--act-order on|off]
//                          [--true-sequential on|off] [--device 0]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_layer.hpp"
#include "device.hpp"
#include "forward_kernels.hpp"
#include "qshard/backend/cuda_backend.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "qshard/pipeline/layer_quantizer.hpp"
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

struct Run {
  LayerTimings stages;
  double total = 0.0;
};

Run run_layer(const Args& args, const ModelConfig& config, const LayerWeights& weights,
              const RotaryTable& rope, const Backend& backend, const UnitStore& hidden) {
  JobOptions o;
  o.samples = args.samples;
  o.seq_len = args.seq_len;
  o.batch_samples = args.batch_samples;
  o.gptq.quant.bits = 4;
  o.gptq.quant.group_size = 128;
  o.gptq.act_order = args.act_order;
  o.true_sequential = args.true_sequential;
  SelfCommunicator one;
  const LayerContext context{config, o, backend, one, rope, false};
  Run run;
  QSHARD_CUDA_CHECK(cudaDeviceSynchronize());
  const auto start = Clock::now();
  const std::unique_ptr<ResidentLayer> layer = backend.load_layer(config, weights, rope);
  run.stages.load = seconds_since(start);
  std::unique_ptr<UnitStore> next;
  quantize_layer(context, weights, *layer, hidden, run.stages, &next);
  QSHARD_CUDA_CHECK(cudaDeviceSynchronize());
  run.total = seconds_since(start);
  return run;
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
    const RotaryTable rope(config, args.seq_len);
    const LayerWeights weights = LayerWeights::load(*source, 0);
    // Random bf16 units of batch_samples samples, made on the device.
    const std::int64_t unit_tokens = args.batch_samples * args.seq_len;
    const auto unit_count = static_cast<std::size_t>(unit_tokens * config.hidden_size);
    auto store = std::make_unique<DeviceUnits>(args.device, DType::BF16, config.hidden_size);
    {
      DeviceBuffer<float> f32(unit_count);
      for (std::int64_t u = 0; u < args.samples / args.batch_samples; ++u) {
        DeviceBuffer<std::byte> unit(unit_count * 2);
        QSHARD_CUDA_CHECK(kernels::fill_normal(f32.data(), unit_count,
                                               17 + static_cast<std::uint64_t>(u) * unit_count,
                                               1.0f, nullptr));
        QSHARD_CUDA_CHECK(kernels::convert(f32.data(), DType::F32, unit.data(), DType::BF16,
                                           unit_count, nullptr));
        QSHARD_CUDA_CHECK(cudaDeviceSynchronize());
        store->add_device(std::move(unit), unit_tokens);
      }
    }
    std::vector<Run> runs;
    for (int r = 0; r <= args.repeats; ++r) {
      const Run p = run_layer(args, config, weights, rope, *backend, *store);
      const LayerTimings& t = p.stages;
      std::printf(
          "%s %d: total %.3f s (load %.3f, forward %.3f, hessian %.3f, reduce %.3f, factor %.3f, "
          "solve %.3f, exchange %.3f, release %.3f; in no stage %.3f)\n",
          r == 0 ? "warm-up" : "run", r, p.total, t.load, t.forward, t.hessian, t.reduce, t.factor,
          t.solve, t.exchange, t.release, p.total - t.total());
      std::fflush(stdout);
      if (r > 0) runs.push_back(p);
    }
    const auto med = [&](auto field) {
      std::vector<double> v;
      for (const Run& p : runs) v.push_back(field(p));
      return median(v);
    };
    std::size_t free_bytes = 0, total_bytes = 0;
    QSHARD_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    std::printf(
        "\nmedian of %d: whole layer %.3f s = load %.3f + forward %.3f + hessian %.3f + reduce "
        "%.3f + factor %.3f + solve %.3f + exchange %.3f\n",
        args.repeats, med([](const Run& p) { return p.total; }),
        med([](const Run& p) { return p.stages.load; }),
        med([](const Run& p) { return p.stages.forward; }),
        med([](const Run& p) { return p.stages.hessian; }),
        med([](const Run& p) { return p.stages.reduce; }),
        med([](const Run& p) { return p.stages.factor; }),
        med([](const Run& p) { return p.stages.solve; }),
        med([](const Run& p) { return p.stages.exchange; }));
    std::printf("device memory in use at the end: %.1f GiB of %.1f GiB\n",
                static_cast<double>(total_bytes - free_bytes) / (1 << 30),
                static_cast<double>(total_bytes) / (1 << 30));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qshard-bench-layer-gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
