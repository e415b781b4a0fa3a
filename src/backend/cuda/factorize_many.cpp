// CudaSolver::factorize_many: a sparse layer's many small factorisations overlapped on helper
// solvers of the same device. Each helper has its own stream, cuBLAS/cuSOLVER handles and host
// thread and factorises every k-th Hessian of the list; cuSOLVER computes each factorisation the
// same way whichever handle runs it, so every result is bitwise the solver's own factorize().
#include <algorithm>
#include <exception>
#include <thread>

#include "cuda_solver.hpp"

namespace qshard::cuda {

std::vector<std::shared_ptr<const Factorization>> CudaSolver::factorize_many(
    const std::vector<const Hessian*>& hessians, const GptqOptions& options) const {
  const int concurrent = std::min<int>(std::max(1, solver_options().concurrent_factorizations),
                                       static_cast<int>(hessians.size()));
  if (concurrent <= 1) return Solver::factorize_many(hessians, options);
  {
    const std::lock_guard lock(helpers_mutex_);
    while (static_cast<int>(helpers_.size()) < concurrent) {
      CudaSolverOptions helper = solver_options();
      helper.concurrent_factorizations = 1;
      helpers_.push_back(std::make_unique<CudaSolver>(device(), helper));
    }
  }
  std::vector<std::shared_ptr<const Factorization>> factors(hessians.size());
  std::vector<std::exception_ptr> errors(hessians.size());
  std::vector<std::thread> threads;
  for (int k = 0; k < concurrent; ++k)
    threads.emplace_back([&, k] {
      const CudaSolver& helper = *helpers_[static_cast<std::size_t>(k)];
      for (std::size_t i = static_cast<std::size_t>(k); i < hessians.size();
           i += static_cast<std::size_t>(concurrent)) {
        try {
          factors[i] = helper.factorize(*hessians[i], options);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)  // the first failure in list order
    if (e) std::rethrow_exception(e);
  return factors;
}

}  // namespace qshard::cuda
