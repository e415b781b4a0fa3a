#pragma once
// What the quantization pipeline asks of a compute backend. The CPU backend (backend/cpu) and the
// CUDA backend (backend/cuda) implement it; the pipeline never knows which one it drives.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qshard/comm/communicator.hpp"
#include "qshard/core/matrix.hpp"
#include "qshard/model/decoder.hpp"
#include "qshard/quant/solver.hpp"

namespace qshard {

// Accumulates one linear input's Hessian from calibration units, exactly and order-independently
// (see quant/hessian.hpp for the fixed-point scheme every backend follows).
class HessianBuilder {
 public:
  virtual ~HessianBuilder() = default;
  virtual std::int64_t features() const = 0;
  // Adds X^T X of one calibration unit, x = [tokens, features].
  virtual void add(const MatrixF& x) = 0;
  // Sums the partials of all ranks (exact integer sums: any rank count gives the same H).
  virtual void all_reduce(Communicator& comm) = 0;
  // The same sum into rank `owner` only (an expert's Hessians go to the rank that solves it):
  // reduced() and tokens() are then valid on `owner` alone. By default an all-reduce.
  virtual void reduce_to(Communicator& comm, int owner) {
    (void)owner;
    all_reduce(comm);
  }
  // H = 2 X^T X / n over all units of all ranks (after all_reduce), left where it was built (the
  // GPU's memory for CUDA): the handle the solver factorises and computes objectives from.
  virtual std::shared_ptr<const Hessian> reduced() const = 0;
  // A host copy of the same (for checks and tests).
  MatrixD hessian() const { return reduced()->to_host(); }
  // Calibration tokens added (after all_reduce: of all ranks).
  virtual std::int64_t tokens() const = 0;
  // Seconds spent adding units so far: host time on the CPU, device time (CUDA events) on a GPU,
  // where the products run asynchronously (synchronises).
  virtual double add_seconds() const = 0;
};

// Where a layer forward delivers its linear inputs: the Hessian builders (of the same backend) to
// add them to (inputs without one are not accumulated), and optionally host copies.
struct LayerTargets {
  std::map<InputId, HessianBuilder*> hessians;
  CaptureFn capture;  // host copies [tokens, features] in fp32 (costly on a GPU: for checks)
  ExpertCapture experts = ExpertCapture::Routed;  // which tokens reach the experts' Hessians

  HessianBuilder* hessian(InputId input) const {
    const auto it = hessians.find(input);
    return it == hessians.end() ? nullptr : it->second;
  }
};

// This rank's calibration units (hidden states [samples * seq_len, hidden], one matrix per unit)
// kept where the backend computes: host memory for the CPU, device memory in the model's dtype for
// CUDA, so that they cross no bus between layers.
class UnitStore {
 public:
  virtual ~UnitStore() = default;
  virtual std::size_t size() const = 0;
  virtual MatrixF unit(std::size_t index) const = 0;  // a host copy (fp32)
  virtual std::int64_t rows(std::size_t index) const = 0;
};

// One fixed tile of a module's rows and the rank that solves it. A module's tiles, in row order,
// are its deal; every rank knows the whole deal.
struct RowTile {
  std::int64_t begin = 0, end = 0;
  int owner = 0;
};
using TileDeal = std::vector<RowTile>;

// What quantize_tiles needs besides the layer.
struct TileJob {
  ModuleId module;
  const TileDeal* deal = nullptr;         // the module's tiles; this rank solves those it owns
  int rank = 0;                           // this rank
  const Factorization* factor = nullptr;  // GPTQ against it; null: round-to-nearest
  const Hessian* hessian = nullptr;       // for the objectives (of this backend, or host)
  const GptqOptions* options = nullptr;
  int threads = 1;  // host worker threads (CPU backend)
};

// This rank's solved tiles of one module, where the backend computed them, with each tile's
// objectives tr((W - Q) H (W - Q)^T) of the result and of round-to-nearest (host values).
class SolvedTiles {
 public:
  virtual ~SolvedTiles() = default;
  // The tiles' rows stacked in deal order.
  virtual QuantizedWeight to_host() const = 0;
  std::vector<double> objective_gptq, objective_rtn;  // per tile, deal order
};

// A whole quantized module (every rank's tiles), where the backend holds it.
class QuantizedModule {
 public:
  virtual ~QuantizedModule() = default;
  virtual QuantizedWeight to_host() const = 0;
  // Summed over the tiles in deal order (the same on every rank and for every rank count).
  double objective_gptq = 0.0, objective_rtn = 0.0;
};

// One decoder layer prepared where the backend computes (the GPU's memory for CUDA), forwarded
// over many calibration units. It reads the LayerWeights it was loaded from, which must outlive it;
// after the caller changes a module of those weights it calls refresh().
class ResidentLayer {
 public:
  virtual ~ResidentLayer() = default;
  // Module `module` of the weights has changed (e.g. replaced by its quantized version).
  virtual void refresh(ModuleId module) = 0;
  // The decoder layer forward (same contract as forward_layer in model/decoder.hpp): delivers each
  // linear input to `targets`; with `stop_after` returns an empty matrix after that input.
  virtual MatrixF forward(const MatrixF& hidden, std::int64_t seq_len,
                          const LayerTargets& targets = {},
                          std::optional<LinearInput> stop_after = std::nullopt) = 0;
  // The same for unit `index` of `units` (a store of the same backend), output discarded: for
  // accumulating Hessians.
  virtual void forward_unit(const UnitStore& units, std::size_t index, std::int64_t seq_len,
                            const LayerTargets& targets,
                            std::optional<LinearInput> stop_after = std::nullopt) = 0;
  // Every unit through the whole layer: the next layer's inputs, in a store of the same backend.
  virtual std::unique_ptr<UnitStore> forward_all(const UnitStore& units, std::int64_t seq_len) = 0;

  // Quantizes this rank's tiles of module job.module (the weights the layer was loaded from):
  // GPTQ against job.factor, or round-to-nearest, and both objectives of every tile.
  virtual std::unique_ptr<SolvedTiles> quantize_tiles(const TileJob& job) = 0;
  // Replaces module `id` of the layer by the dequantized `module` (a module of the same backend)
  // in the layer's own copy; the weights it was loaded from are left unchanged.
  virtual void install(ModuleId id, const QuantizedModule& module) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual const Solver& solver() const = 0;
  virtual std::unique_ptr<HessianBuilder> make_hessian(std::int64_t features) const = 0;
  // Takes this rank's units (host fp32) into the backend's memory (activations of `config`'s
  // model).
  virtual std::unique_ptr<UnitStore> store_units(const ModelConfig& config,
                                                 std::vector<MatrixF> units) const = 0;
  // Prepares one decoder layer where this backend computes (CUDA: `weights` uploaded to the GPU;
  // the CPU reads them in place); `weights` must outlive the layer (see ResidentLayer). Callable
  // from another thread: the job's loader prepares the next layer while this one computes.
  virtual std::unique_ptr<ResidentLayer> load_layer(const ModelConfig& config,
                                                    const LayerWeights& weights,
                                                    const RotaryTable& rope) const = 0;
  // Collective: every rank passes its solved tiles of one module and the module's deal; returns
  // the whole module on every rank (NCCL on device buffers for CUDA with an NCCL communicator,
  // else through the host communicator: the same bits either way).
  virtual std::unique_ptr<QuantizedModule> gather_tiles(std::unique_ptr<SolvedTiles> mine,
                                                        const TileDeal& deal,
                                                        Communicator& comm) const = 0;
  // --layer_groups' boundary activations: this rank's units to rank `dest` of `world`, taken
  // whole by receive_units(config, world, dest's source) there: a head message, then one message
  // per unit in order (the bits never depend on timing). By default host messages of fp32 values
  // (backend/cpu/unit_messages.cpp); the CUDA backend moves its device units with NCCL when `world`
  // is an NCCL communicator, else through pinned host buffers in the activation dtype.
  virtual void send_units(const ModelConfig& config, const UnitStore& units, Communicator& world,
                          int dest) const;
  virtual std::unique_ptr<UnitStore> receive_units(const ModelConfig& config, Communicator& world,
                                                   int source) const;
  // One forward of one batch (loads the layer each time: for tests and one-off use).
  MatrixF forward_layer(const ModelConfig& config, const LayerWeights& weights,
                        const RotaryTable& rope, const MatrixF& hidden, std::int64_t seq_len,
                        const CaptureFn& capture = {},
                        std::optional<LinearInput> stop_after = std::nullopt) const {
    LayerTargets targets;
    targets.capture = capture;
    return load_layer(config, weights, rope)->forward(hidden, seq_len, targets, stop_after);
  }
};

}  // namespace qshard
