#pragma once
// Random GPTQ test problems: W with per-row scales, H = 2 X^T X / n from correlated X with a few
// large-variance input channels.
#include <random>

#include "qshard/core/matrix.hpp"

namespace qshard::test {

struct Problem {
  MatrixF weight;
  MatrixD hessian;
};

inline MatrixD hessian_of(const MatrixD& x) {
  const std::int64_t t = x.rows(), n = x.cols();
  MatrixD h(n, n);
  for (std::int64_t a = 0; a < t; ++a)
    for (std::int64_t i = 0; i < n; ++i) {
      const double xi = x(a, i);
      for (std::int64_t j = 0; j < n; ++j) h(i, j) += xi * x(a, j);
    }
  for (double& v : h.values()) v *= 2.0 / static_cast<double>(t);
  return h;
}

// `correlated`: a factor model X = Z + F B; then a few channels scaled x10..x50.
inline Problem make_problem(std::uint64_t seed, std::int64_t rows, std::int64_t cols,
                            bool correlated = true, std::int64_t tokens = -1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(10.0, 50.0);
  if (tokens < 0) tokens = 2 * cols;
  MatrixD z(tokens, cols);
  for (double& v : z.values()) v = normal(rng);
  MatrixD x = z;
  if (correlated) {
    // A factor model, as LLM activations are: X = Z + F B with 16 shared factors.
    const std::int64_t factors = 16;
    MatrixD f(tokens, factors), b(factors, cols);
    for (double& v : f.values()) v = normal(rng);
    for (double& v : b.values()) v = normal(rng);
    for (std::int64_t a = 0; a < tokens; ++a)
      for (std::int64_t j = 0; j < cols; ++j) {
        double s = z(a, j);
        for (std::int64_t k = 0; k < factors; ++k) s += f(a, k) * b(k, j);
        x(a, j) = s;
      }
  }
  for (int c = 0; c < 4; ++c) {
    const std::int64_t channel =
        static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(cols));
    const double scale = uniform(rng);
    for (std::int64_t a = 0; a < tokens; ++a) x(a, channel) *= scale;
  }
  Problem p{MatrixF(rows, cols), hessian_of(x)};
  for (std::int64_t r = 0; r < rows; ++r) {
    const double row_scale = std::exp(0.5 * normal(rng));
    for (std::int64_t c = 0; c < cols; ++c)
      p.weight(r, c) = static_cast<float>(row_scale * normal(rng) * 0.05);
  }
  return p;
}

}  // namespace qshard::test
