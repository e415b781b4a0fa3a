#pragma once
// The CPU backend (src/backend/cpu): the reference implementation of backend.hpp, always built.
#include <memory>

#include "qshard/backend/backend.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {

std::unique_ptr<Backend> make_cpu_backend();
// The fp64 GPTQ solver on OpenBLAS/LAPACKE (backend/cpu/gptq_solver.cpp).
std::unique_ptr<Solver> make_cpu_solver();

}  // namespace qshard
