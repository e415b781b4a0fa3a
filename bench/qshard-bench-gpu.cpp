// Benchmark of the CUDA backend on one GPU (not a test): for each weight shape out x in, at 4 bits,
// group 128, act_order off and on:
//   (a) Hessian accumulation of units x tokens_per_unit random correlated activations (bf16 GEMM +
//       exact fixed-point limbs), as TFLOP/s against a cuBLAS bf16 GEMM (8192^3) of the same run;
//   (b) the factorisation (fp64 potrf + trtri on the device; H upload reported apart);
//   (c) the GPTQ solve of the whole matrix (weights already on the device).
// CUDA-event timings after warm-up, medians of --repeats. The activations are X = Z + F B (16
// shared factors) with four channels scaled x10, x20, x35, x50, generated on the GPU per unit:
// bench/gptq_torch_baseline.py builds its H the same way.
//
//   qshard-bench-gpu [--shapes 4096x4096,11008x4096] [--repeats 3] [--units 128]
//                    [--tokens-per-unit 2048] [--act-order off|on|both] [--device 0]
//                    [--json FILE]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_hessian.hpp"
#include "cuda_solver.hpp"
#include "device.hpp"
#include "hessian_kernels.hpp"
#include "qshard/backend/cuda_backend.hpp"
#include "qshard/quant/solver.hpp"
#include "random_kernels.hpp"

using namespace qshard;
using namespace qshard::cuda;

namespace {

struct Shape {
  std::int64_t out = 0, in = 0;
};

struct Args {
  std::vector<Shape> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {8192, 8192},
                               {1024, 8192}, {28672, 8192}, {8192, 28672}};
  int repeats = 3;
  std::int64_t units = 128;
  std::int64_t tokens_per_unit = 2048;
  std::vector<bool> act_orders = {false, true};
  int device = 0;
  std::string json;
};

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "%s\nusage: qshard-bench-gpu [--shapes OUTxIN,...] [--repeats N] [--units N]\n"
               "       [--tokens-per-unit N] [--act-order off|on|both] [--device N] [--json "
               "FILE]\n",
               problem.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--shapes") {
      a.shapes.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) {
        const auto x = item.find('x');
        if (x == std::string::npos) usage("bad shape " + item);
        a.shapes.push_back({std::stoll(item.substr(0, x)), std::stoll(item.substr(x + 1))});
      }
    } else if (flag == "--repeats") {
      a.repeats = std::max(1, std::stoi(value));
    } else if (flag == "--units") {
      a.units = std::max<std::int64_t>(1, std::stoll(value));
    } else if (flag == "--tokens-per-unit") {
      a.tokens_per_unit = std::max<std::int64_t>(1, std::stoll(value));
    } else if (flag == "--act-order") {
      if (value == "off")
        a.act_orders = {false};
      else if (value == "on")
        a.act_orders = {true};
      else if (value == "both")
        a.act_orders = {false, true};
      else
        usage("bad --act-order " + value);
    } else if (flag == "--device") {
      a.device = std::stoi(value);
    } else if (flag == "--json") {
      a.json = value;
    } else {
      usage("unknown flag " + flag);
    }
  }
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// cuBLAS bf16 x bf16 -> fp32 (fp32 accumulation) GEMM rate at n^3, TFLOP/s.
double cublas_bf16_tflops(std::int64_t n, int repeats) {
  const Stream stream;
  const CublasHandle cublas(stream.get());
  const std::size_t count = static_cast<std::size_t>(n * n);
  DeviceBuffer<float> f(count), c(count);
  DeviceBuffer<std::uint16_t> a(count), b(count);
  QSHARD_CUDA_CHECK(kernels::fill_normal(f.data(), count, 1, 1.0f, stream.get()));
  QSHARD_CUDA_CHECK(kernels::to_bf16(f.data(), count, a.data(), stream.get()));
  QSHARD_CUDA_CHECK(kernels::fill_normal(f.data(), count, 2, 1.0f, stream.get()));
  QSHARD_CUDA_CHECK(kernels::to_bf16(f.data(), count, b.data(), stream.get()));
  const float one = 1.0f, zero = 0.0f;
  const auto gemm = [&] {
    const int ni = static_cast<int>(n);
    QSHARD_CUDA_CHECK(cublasGemmEx(cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, ni, ni, ni, &one,
                                   a.data(), CUDA_R_16BF, ni, b.data(), CUDA_R_16BF, ni, &zero,
                                   c.data(), CUDA_R_32F, ni, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
  };
  for (int i = 0; i < 3; ++i) gemm();
  std::vector<double> times;
  const Event start, stop;
  for (int i = 0; i < std::max(repeats, 5); ++i) {
    start.record(stream.get());
    gemm();
    stop.record(stream.get());
    stop.synchronize();
    times.push_back(stop.elapsed_ms_since(start));
  }
  return 2.0 * static_cast<double>(n) * n * n / (median(times) * 1e-3) / 1e12;
}

// One unit of activations [tokens, f] on `stream`: Z + F B with four scaled channels.
void make_unit(float* x, float* factors, const float* basis, std::int64_t tokens, std::int64_t f,
               std::uint64_t unit, const CublasHandle& cublas, cudaStream_t stream) {
  constexpr int kFactors = 16;
  QSHARD_CUDA_CHECK(
      kernels::fill_normal(x, static_cast<std::size_t>(tokens * f), 1000 + 2 * unit, 1.0f, stream));
  QSHARD_CUDA_CHECK(kernels::fill_normal(factors, static_cast<std::size_t>(tokens * kFactors),
                                         1001 + 2 * unit, 1.0f, stream));
  // Row-major X [tokens, f] += F [tokens, 16] B [16, f]; column-major: X^T += B^T F^T.
  const float one = 1.0f;
  QSHARD_CUDA_CHECK(cublasSgemm(
      cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(f), static_cast<int>(tokens),
      kFactors, &one, basis, static_cast<int>(f), factors, kFactors, &one, x, static_cast<int>(f)));
  const float scale[4] = {10.0f, 20.0f, 35.0f, 50.0f};
  for (int k = 0; k < 4; ++k) {
    const std::int64_t column = static_cast<std::int64_t>(
        (static_cast<std::uint64_t>(k + 1) * 2654435761ull) % static_cast<std::uint64_t>(f));
    QSHARD_CUDA_CHECK(kernels::scale_column(x, tokens, f, column, scale[k], stream));
  }
}

struct HessianResult {
  MatrixD h;
  double ms = 0.0;  // accumulation only (generation excluded)
  double tflops = 0.0;
  double unit_ms_median = 0.0;
};

HessianResult build_hessian(const Args& args, std::int64_t f) {
  HessianResult result;
  const std::int64_t tokens = args.tokens_per_unit;
  DeviceBuffer<float> x(static_cast<std::size_t>(tokens * f));
  DeviceBuffer<float> factors(static_cast<std::size_t>(tokens * 16));
  DeviceBuffer<float> basis(static_cast<std::size_t>(16 * f));
  const auto run = [&](std::int64_t units, bool timed) {
    CudaHessianBuilder builder(args.device, f);
    const cudaStream_t stream = builder.stream();
    const CublasHandle cublas(stream);
    QSHARD_CUDA_CHECK(kernels::fill_normal(basis.data(), basis.size(), 7, 1.0f, stream));
    std::vector<double> times;
    const Event start, stop;
    for (std::int64_t u = 0; u < units; ++u) {
      make_unit(x.data(), factors.data(), basis.data(), tokens, f, static_cast<std::uint64_t>(u),
                cublas, stream);
      start.record(stream);
      builder.add_device(x.data(), tokens);
      stop.record(stream);
      stop.synchronize();
      times.push_back(stop.elapsed_ms_since(start));
    }
    if (timed) {
      for (const double t : times) result.ms += t;
      result.unit_ms_median = median(times);
      result.h = builder.hessian();
    }
  };
  run(2, false);  // warm-up: cuBLAS heuristics, allocations
  run(args.units, true);
  result.tflops = 2.0 * static_cast<double>(tokens) * static_cast<double>(args.units) *
                  static_cast<double>(f) * static_cast<double>(f) / (result.ms * 1e-3) / 1e12;
  return result;
}

struct Row {
  Shape shape;
  bool act_order = false;
  double hessian_ms = 0.0, hessian_tflops = 0.0;
  double upload_ms = 0.0, factor_ms = 0.0, solve_ms = 0.0;
  int damp_steps = 0;
  double objective_ratio = 0.0;  // GPTQ / RTN objective on the first rows (sanity)
};

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "qshard-bench-gpu: no CUDA device visible\n");
    return 1;
  }
  try {
    const DeviceGuard guard(args.device);
    cudaDeviceProp prop{};
    QSHARD_CUDA_CHECK(cudaGetDeviceProperties(&prop, args.device));
    std::printf("device %d: %s, %d SMs, %.1f GiB\n", args.device, prop.name,
                prop.multiProcessorCount, static_cast<double>(prop.totalGlobalMem) / (1 << 30));
    const double gemm_rate = cublas_bf16_tflops(8192, args.repeats);
    std::printf("cuBLAS bf16 GEMM 8192^3 (fp32 accumulate): %.1f TFLOP/s\n", gemm_rate);
    std::printf("Hessian units: %lld x %lld tokens; 4 bits, group 128, block 128, damp 0.01\n",
                static_cast<long long>(args.units), static_cast<long long>(args.tokens_per_unit));

    const CudaSolver solver(args.device);
    std::map<std::int64_t, HessianResult> hessians;
    std::vector<Row> rows;
    for (const Shape& shape : args.shapes) {
      if (!hessians.count(shape.in)) {
        hessians[shape.in] = build_hessian(args, shape.in);
        const HessianResult& hr = hessians[shape.in];
        std::printf("H[%lld]: %.1f ms (%.1f TFLOP/s, median unit %.3f ms)\n",
                    static_cast<long long>(shape.in), hr.ms, hr.tflops, hr.unit_ms_median);
      }
      const HessianResult& hr = hessians[shape.in];
      // Weights on the device: N(0, 0.02^2).
      DeviceBuffer<float> w(static_cast<std::size_t>(shape.out * shape.in));
      QSHARD_CUDA_CHECK(kernels::fill_normal(w.data(), w.size(), 99, 0.02f, solver.stream()));
      QSHARD_CUDA_CHECK(cudaStreamSynchronize(solver.stream()));
      for (const bool act_order : args.act_orders) {
        GptqOptions o;
        o.quant.bits = 4;
        o.quant.group_size = 128;
        o.act_order = act_order;
        Row row;
        row.shape = shape;
        row.act_order = act_order;
        row.hessian_ms = hr.ms;
        row.hessian_tflops = hr.tflops;
        std::vector<double> upload, factor;
        std::shared_ptr<const DeviceFactor> f;
        for (int r = 0; r <= args.repeats; ++r) {  // the first is the warm-up
          FactorizeTimings t;
          f = solver.factorize_device(hr.h, o, nullptr, &t);
          if (r == 0) continue;
          upload.push_back(t.upload_ms);
          factor.push_back(t.factor_ms);
        }
        row.upload_ms = median(upload);
        row.factor_ms = median(factor);
        row.damp_steps = f->damp_steps;
        std::vector<double> solve;
        const Event start, stop;
        DeviceQuantized q;
        for (int r = 0; r <= args.repeats; ++r) {
          start.record(solver.stream());
          q = solver.solve_resident(w.data(), shape.out, *f, o);
          stop.record(solver.stream());
          stop.synchronize();
          if (r > 0) solve.push_back(stop.elapsed_ms_since(start));
        }
        row.solve_ms = median(solve);
        // Sanity: objective of GPTQ against RTN on the first 16 rows.
        {
          const std::int64_t check = std::min<std::int64_t>(16, shape.out);
          const QuantizedWeight all = solver.download(q, *f, o);
          const QuantizedWeight part = all.slice_rows(0, check);
          MatrixF w_host(check, shape.in);
          QSHARD_CUDA_CHECK(cudaMemcpy(w_host.data(), w.data(), w_host.size() * sizeof(float),
                                       cudaMemcpyDeviceToHost));
          const double gptq = reconstruction_objective(w_host, part.dequantize(), hr.h);
          const double rtn =
              reconstruction_objective(w_host, quantize_rtn(w_host, o.quant).dequantize(), hr.h);
          row.objective_ratio = gptq / rtn;
        }
        std::printf(
            "%6lldx%-6lld act_order=%-3s factor %8.1f ms (+ upload %7.1f ms, %d damp steps)  "
            "solve %8.1f ms  GPTQ/RTN objective %.3f\n",
            static_cast<long long>(shape.out), static_cast<long long>(shape.in),
            act_order ? "on" : "off", row.factor_ms, row.upload_ms, row.damp_steps, row.solve_ms,
            row.objective_ratio);
        std::fflush(stdout);
        rows.push_back(row);
      }
    }

    std::printf("\n%-13s %-4s %12s %9s %8s %11s %11s %10s\n", "shape", "act", "hessian_ms",
                "TFLOP/s", "%cuBLAS", "factor_ms", "solve_ms", "obj/RTN");
    for (const Row& r : rows)
      std::printf("%6lldx%-6lld %-4s %12.1f %9.1f %7.1f%% %11.1f %11.1f %10.3f\n",
                  static_cast<long long>(r.shape.out), static_cast<long long>(r.shape.in),
                  r.act_order ? "on" : "off", r.hessian_ms, r.hessian_tflops,
                  100.0 * r.hessian_tflops / gemm_rate, r.factor_ms, r.solve_ms, r.objective_ratio);
    std::printf(
        "(d) whole decoder layer: not measured (forward_layer runs on the CPU in this "
        "backend)\n");

    if (!args.json.empty()) {
      std::ofstream out(args.json);
      out << "{\n  \"device\": \"" << prop.name << "\",\n  \"cublas_bf16_tflops\": " << gemm_rate
          << ",\n  \"units\": " << args.units
          << ",\n  \"tokens_per_unit\": " << args.tokens_per_unit << ",\n  \"rows\": [\n";
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        out << "    {\"out\": " << r.shape.out << ", \"in\": " << r.shape.in
            << ", \"act_order\": " << (r.act_order ? "true" : "false")
            << ", \"hessian_ms\": " << r.hessian_ms << ", \"hessian_tflops\": " << r.hessian_tflops
            << ", \"factor_ms\": " << r.factor_ms << ", \"h_upload_ms\": " << r.upload_ms
            << ", \"solve_ms\": " << r.solve_ms << ", \"damp_steps\": " << r.damp_steps
            << ", \"objective_vs_rtn\": " << r.objective_ratio << "}"
            << (i + 1 < rows.size() ? ",\n" : "\n");
      }
      out << "  ]\n}\n";
      std::printf("wrote %s\n", args.json.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qshard-bench-gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
