// Micro-benchmark of the CPU backend: the GPTQ solver and the exact Hessian accumulation, against
// OpenBLAS SGEMM and DGEMM rates measured in the same run. Not a test.
//
//   build/bench/qshard-bench-cpu [--threads N] [--repeats N]
#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <random>

#include "bench_util.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/quant/hessian.hpp"
#include "qshard/quant/solver.hpp"

using namespace qshard;

namespace {

double gemm_gflops(bool dbl, int n, int repeats) {
  std::mt19937 rng(1);
  std::normal_distribution<double> normal;
  if (dbl) {
    std::vector<double> a(static_cast<std::size_t>(n) * n), b(a.size()), c(a.size());
    for (auto& v : a) v = normal(rng);
    for (auto& v : b) v = normal(rng);
    const double s = bench::median_seconds(repeats, [&] {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a.data(), n, b.data(), n,
                  0.0, c.data(), n);
    });
    return 2.0 * n * n * double(n) / s / 1e9;
  }
  std::vector<float> a(static_cast<std::size_t>(n) * n), b(a.size()), c(a.size());
  for (auto& v : a) v = static_cast<float>(normal(rng));
  for (auto& v : b) v = static_cast<float>(normal(rng));
  const double s = bench::median_seconds(repeats, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
  });
  return 2.0 * n * n * double(n) / s / 1e9;
}

struct Row {
  std::string what;
  double seconds;
  double gflops;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, repeats = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::atoi(argv[i + 1]);
  }
  openblas_set_num_threads(threads);
  std::cout << "qshard-bench-cpu: " << bench::cpu_model() << ", "
            << std::thread::hardware_concurrency() << " hardware threads, OpenBLAS threads "
            << threads << ", median of " << repeats << "\n";
  std::vector<Row> rows;
  const double sgemm = gemm_gflops(false, 1024, repeats), dgemm = gemm_gflops(true, 1024, repeats);
  rows.push_back({"OpenBLAS SGEMM 1024^3", 2.0 * 1024 * 1024 * 1024 / sgemm / 1e9, sgemm});
  rows.push_back({"OpenBLAS DGEMM 1024^3", 2.0 * 1024 * 1024 * 1024 / dgemm / 1e9, dgemm});

  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (const std::int64_t features : {1024, 4096}) {
    const std::int64_t tokens = 2048;
    MatrixF x(tokens, features);
    for (auto& v : x.values()) v = normal(rng);
    HessianAccumulator acc(features);
    const double s = bench::median_seconds(repeats, [&] { acc.add_unit(x); });
    // The flops done: the symmetric product (DSYRK) computes one triangle, t f (f + 1); the
    // fixed-point rounding of every element adds no flops but costs time.
    rows.push_back({"Hessian unit " + std::to_string(tokens) + "x" + std::to_string(features), s,
                    tokens * double(features) * (features + 1) / s / 1e9});
  }

  const auto solver = make_cpu_solver();
  for (const auto& [out, in] : {std::pair<std::int64_t, std::int64_t>{1024, 1024}, {4096, 4096}}) {
    MatrixF x(2 * in, in), w(out, in);
    for (auto& v : x.values()) v = normal(rng);
    for (auto& v : w.values()) v = normal(rng) * 0.02f;
    HessianAccumulator acc(in);
    acc.add_unit(x);
    const MatrixD h = acc.hessian();
    GptqOptions o;
    o.quant.bits = 4;
    o.quant.group_size = 128;
    HessianFactor f;
    const int reps = out >= 4096 ? std::min(repeats, 3) : repeats;
    const double fs = bench::median_seconds(reps, [&] { f = solver->factorize(h, o); });
    rows.push_back(
        {"factorize " + std::to_string(in), fs, 2.0 / 3.0 * in * double(in) * in / fs / 1e9});
    const double ss = bench::median_seconds(reps, [&] { solver->solve(w, f, o); });
    // Every column's error reaches all later columns: 2 out sum_k (in - k) = out in^2 flops, in
    // the batches' scalar loops and the trailing DGEMMs together.
    rows.push_back({"solve " + std::to_string(out) + "x" + std::to_string(in) + " 4-bit g128", ss,
                    out * double(in) * in / ss / 1e9});
  }
  std::cout << "\n"
            << std::left << std::setw(36) << "what" << std::right << std::setw(12) << "seconds"
            << std::setw(12) << "GFLOP/s" << std::setw(12) << "% SGEMM" << std::setw(12)
            << "% DGEMM"
            << "\n";
  for (const Row& r : rows)
    std::cout << std::left << std::setw(36) << r.what << std::right << std::fixed
              << std::setprecision(4) << std::setw(12) << r.seconds << std::setprecision(1)
              << std::setw(12) << r.gflops << std::setw(12) << 100.0 * r.gflops / sgemm
              << std::setw(12) << 100.0 * r.gflops / dgemm << "\n";
  return 0;
}
