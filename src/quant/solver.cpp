// The Solver interface's default for many factorisations: one after another.
#include "qshard/quant/solver.hpp"

namespace qshard {

std::vector<std::shared_ptr<const Factorization>> Solver::factorize_many(
    const std::vector<const Hessian*>& hessians, const GptqOptions& options) const {
  std::vector<std::shared_ptr<const Factorization>> factors;
  factors.reserve(hessians.size());
  for (const Hessian* h : hessians) factors.push_back(factorize(*h, options));
  return factors;
}

}  // namespace qshard
