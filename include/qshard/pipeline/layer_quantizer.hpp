#pragma once
// One decoder layer of the distributed job: the rank forwards its calibration units, accumulates
// partial Hessians per linear input, all-reduces them, solves its share of fixed row tiles, and
// all-gathers the quantized tiles so that every rank holds the whole quantized layer.
#include <vector>

#include "qshard/backend/backend.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/pipeline/job_options.hpp"

namespace qshard {

struct LayerTimings {
  double forward = 0.0;  // the decoder forward of this rank's units (Hessian additions excluded)
  double hessian = 0.0;  // adding units' X^T X
  double reduce = 0.0;   // all-reducing the Hessians
  double solve = 0.0;    // factorisations and this rank's tiles
  double gather = 0.0;   // all-gathering the quantized tiles
};

struct LayerContext {
  const ModelConfig& config;
  const JobOptions& options;
  const Backend& backend;
  Communicator& comm;
  const RotaryTable& rope;
};

// Quantizes the selected modules of `weights` (replacing them with their dequantized values) from
// `hidden`, this rank's units of layer inputs (a store of context.backend). Returns the seven
// modules' records in Linear order; with `next`, also forwards every unit through the quantized
// layer into *next (the next layer's inputs).
std::vector<ModuleRecord> quantize_layer(const LayerContext& context, LayerWeights& weights,
                                         const UnitStore& hidden, LayerTimings& timings,
                                         std::unique_ptr<UnitStore>* next = nullptr);

}  // namespace qshard
