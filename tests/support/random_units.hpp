#pragma once
// Calibration units of random hidden states (normal, fixed seed), one matrix per unit.
#include <cstdint>
#include <random>
#include <vector>

#include "qshard/core/matrix.hpp"

namespace qshard::test {

inline std::vector<MatrixF> random_units(const std::vector<std::int64_t>& rows, std::int64_t cols,
                                         std::uint64_t seed, float sigma = 2.0F) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0F, sigma);
  std::vector<MatrixF> units;
  for (const std::int64_t r : rows) {
    MatrixF unit(r, cols);
    for (std::size_t i = 0; i < unit.size(); ++i) unit.data()[i] = normal(rng);
    units.push_back(std::move(unit));
  }
  return units;
}

}  // namespace qshard::test
