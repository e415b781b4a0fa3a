#pragma once
// One decoder layer of the distributed job: the rank forwards its calibration units, accumulates
// partial Hessians per linear input, all-reduces them, factorises each once, solves its share of
// fixed row tiles, and exchanges the quantized tiles so that every rank's resident layer holds the
// whole quantized layer. Hessians, factorisations and tiles stay where the backend computes (the
// GPU's memory for CUDA); only objectives, and the results rank 0 writes, reach the host.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qshard/backend/backend.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/pipeline/job_options.hpp"

namespace qshard {

// Seconds of one layer by stage, each counted once (the job fills `load`, `write` and part of
// `release`, quantize_layer the others); with other(wall) they add up to the layer's wall time.
struct LayerTimings {
  double load = 0.0;      // waiting for the layer's weights (read or generated ahead) and uploading
  double forward = 0.0;   // the decoder forward of this rank's units (Hessian additions excluded)
  double hessian = 0.0;   // adding units' X^T X
  double reduce = 0.0;    // all-reducing the Hessians
  double factor = 0.0;    // factorising each Hessian
  double solve = 0.0;     // this rank's tiles: GPTQ, RTN and both objectives
  double exchange = 0.0;  // all-gathering the tiles and installing the quantized modules
  double write = 0.0;     // handing the layer to the writer (rank 0; the file is written behind)
  double release = 0.0;   // freeing each stage's Hessians and factorisations, the layer and its
                          // inputs

  // Done ahead on the I/O thread while the previous layer computed (not in total()): reading or
  // generating this layer's weights, and preparing them where the backend computes (the upload).
  double ahead_read = 0.0;
  double ahead_upload = 0.0;

  double total() const {
    return load + forward + hessian + reduce + factor + solve + exchange + write + release;
  }
  // The part of a layer's `wall` seconds in no stage (bookkeeping between the stages).
  double other(double wall) const { return wall - total(); }
};

// Told what quantize_layer is doing, for progress reports (rank 0's job passes its progress).
class LayerObserver {
 public:
  virtual ~LayerObserver() = default;
  // An activity begins: `what`, counting `total` of `unit` (empty: not counted) from `done`.
  virtual void begin(std::string what, std::string unit, std::int64_t total, std::int64_t done) = 0;
  // `done` of the activity's `total` are done.
  virtual void advance(std::int64_t done) = 0;
};

struct LayerContext {
  const ModelConfig& config;
  const JobOptions& options;
  const Backend& backend;
  Communicator& comm;
  const RotaryTable& rope;
  bool host_results = true;  // download the quantized modules into the records (rank 0 writes)
  LayerObserver* observer = nullptr;  // told each activity and its count; null: nobody
  std::int64_t layer = 0;             // the layer's index (which modules it has)
};

// The quantized modules where the backend holds them, in layer_modules() order (null: not
// quantized).
using QuantizedModules = std::vector<std::shared_ptr<const QuantizedModule>>;

// Quantizes the selected modules of `weights` from `hidden`, this rank's units of layer inputs
// (a store of context.backend), on `layer` (loaded by context.backend from `weights`), stage by
// stage ((q,k,v) -> o -> (gate,up) -> down when true-sequential), each in named steps: accumulate,
// reduce, factorise, plan tiles, then solve and exchange module by module. A sparse layer's experts
// are modules like the others: each has Hessians of its own inputs (the tokens routed to it, or
// all with moe_calibration = all), and one no token reached is rounded to nearest. Returns the
// modules' records in layer_modules() order, with their quantized weights when
// context.host_results; with `modules`, the quantized modules go there instead, to be brought to
// the host later (the job's writer thread does that while the next layer computes). With `next`,
// also forwards every unit through the quantized layer into *next (the next layer's inputs).
std::vector<ModuleRecord> quantize_layer(const LayerContext& context, const LayerWeights& weights,
                                         ResidentLayer& layer, const UnitStore& hidden,
                                         LayerTimings& timings,
                                         std::unique_ptr<UnitStore>* next = nullptr,
                                         QuantizedModules* modules = nullptr);

}  // namespace qshard
