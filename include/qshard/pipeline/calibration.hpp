#pragma once
// Calibration samples and how they are split into forward units and across ranks.
#include <cstdint>

#include "qshard/io/tokens.hpp"
#include "qshard/pipeline/job_options.hpp"

namespace qshard {

// The job's calibration tokens [samples, seq_len]: the file's first rows, seeded windows of it, or
// (no file) seeded random ids of the vocabulary. Ids outside the vocabulary are refused.
TokenSet load_calibration(const JobOptions& options, const ModelConfig& config);

// Units of `batch_samples` samples (the last may be smaller); rank r of R owns the contiguous units
// [first, last). Units never depend on R, so every unit's forward and Hessian partial do not
// either.
struct UnitRange {
  std::int64_t first = 0;
  std::int64_t last = 0;
};
std::int64_t unit_count(std::int64_t samples, std::int64_t batch_samples);
UnitRange units_of_rank(std::int64_t units, int rank, int ranks);

}  // namespace qshard
