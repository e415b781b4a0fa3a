#include "qshard/pipeline/layer_quantizer.hpp"

#include <algorithm>
#include <map>

#include "qshard/core/error.hpp"
#include "qshard/core/scoped_timer.hpp"

namespace qshard {
namespace {

using Builders = std::map<LinearInput, std::unique_ptr<HessianBuilder>>;
using Hessians = std::map<LinearInput, std::shared_ptr<const Hessian>>;
using Factors = std::map<LinearInput, std::shared_ptr<const Factorization>>;

// The layer's results as its stages fill them.
struct LayerResults {
  std::vector<ModuleRecord> records;  // Linear order
  QuantizedModules* modules = nullptr;
  std::int64_t solved = 0;  // modules solved and exchanged so far
  std::int64_t total = 0;   // modules the layer quantizes
};

// The linear inputs solved together: (q,k,v) -> o -> (gate,up) -> down when true-sequential.
std::vector<std::vector<LinearInput>> stages_of(bool true_sequential) {
  if (!true_sequential)
    return {{LinearInput::Attention, LinearInput::AttentionOutput, LinearInput::Mlp,
             LinearInput::MlpDown}};
  return {{LinearInput::Attention},
          {LinearInput::AttentionOutput},
          {LinearInput::Mlp},
          {LinearInput::MlpDown}};
}

bool selected(const JobOptions& o, Linear l) {
  return std::find(o.modules.begin(), o.modules.end(), l) != o.modules.end();
}

// The modules of a stage that the job quantizes, in Linear order.
std::vector<Linear> stage_modules(const JobOptions& o, const std::vector<LinearInput>& inputs) {
  std::vector<Linear> modules;
  for (const Linear l : kAllLinears)
    if (selected(o, l) && std::find(inputs.begin(), inputs.end(), input_of(l)) != inputs.end())
      modules.push_back(l);
  return modules;
}

// "q_proj, k_proj, v_proj": for progress reports.
std::string names_of(const std::vector<Linear>& modules) {
  std::string names;
  for (const Linear l : modules) {
    if (!names.empty()) names += ", ";
    names += linear_name(l);
  }
  return names;
}

void begin(const LayerContext& ctx, std::string what, std::string unit = "", std::int64_t total = 0,
           std::int64_t done = 0) {
  if (ctx.observer != nullptr) ctx.observer->begin(std::move(what), std::move(unit), total, done);
}
void advance(const LayerContext& ctx, std::int64_t done) {
  if (ctx.observer != nullptr) ctx.observer->advance(done);
}

// Every module's record before any is quantized: left in float.
LayerResults initial_results(const LayerWeights& weights, QuantizedModules* modules_out) {
  LayerResults results;
  results.records.resize(std::size(kAllLinears));
  results.modules = modules_out;
  if (modules_out != nullptr) modules_out->assign(std::size(kAllLinears), nullptr);
  for (const Linear l : kAllLinears) {
    ModuleRecord& r = results.records[static_cast<std::size_t>(l)];
    r.linear = l;
    r.method = "none";
    r.bias = weights.bias[static_cast<std::size_t>(l)];
  }
  return results;
}

// One builder per linear input of the stage's modules (allocating its limbs is Hessian work).
Builders make_builders(const LayerContext& ctx, const std::vector<Linear>& modules,
                       LayerTimings& timings) {
  const ScopedTimer timer(timings.hessian);
  Builders builders;
  for (const Linear l : modules) {
    const LinearInput input = input_of(l);
    if (builders.count(input) == 0)
      builders[input] = ctx.backend.make_hessian(input_features(ctx.config, input));
  }
  return builders;
}

// 1. Accumulate: forward this rank's units up to the stage's last input, adding each unit's
// X^T X to the partial Hessians of the stage's inputs.
Builders accumulate(const LayerContext& ctx, ResidentLayer& layer, const UnitStore& hidden,
                    const std::vector<Linear>& modules, LayerTimings& timings) {
  Builders builders = make_builders(ctx, modules, timings);
  LayerTargets targets;
  for (const auto& [input, builder] : builders)
    targets.hessians[static_cast<std::size_t>(input)] = builder.get();
  const LinearInput last = builders.rbegin()->first;
  const auto units = static_cast<std::int64_t>(hidden.size());
  begin(ctx, "forward for " + names_of(modules), "units", units);
  double seconds = 0.0;
  {
    const ScopedTimer timer(seconds);
    for (std::size_t u = 0; u < hidden.size(); ++u) {
      layer.forward_unit(hidden, u, ctx.options.seq_len, targets, last);
      advance(ctx, static_cast<std::int64_t>(u) + 1);
    }
    for (const auto& entry : builders) (void)entry.second->add_seconds();  // synchronises
  }
  double hessian_seconds = 0.0;  // on a GPU the products run asynchronously: device time
  for (const auto& entry : builders) hessian_seconds += entry.second->add_seconds();
  timings.forward += std::max(0.0, seconds - hessian_seconds);
  timings.hessian += std::min(seconds, hessian_seconds);
  return builders;
}

// 2. Reduce: the exact all-reduce of the partial Hessians; every rank holds the same H.
Hessians reduce(const LayerContext& ctx, const Builders& builders, LayerTimings& timings) {
  begin(ctx, "all-reduce", "Hessians", static_cast<std::int64_t>(builders.size()));
  const ScopedTimer timer(timings.reduce);
  Hessians hessians;
  for (const auto& [input, builder] : builders) {
    builder->all_reduce(ctx.comm);
    hessians[input] = builder->reduced();
    advance(ctx, static_cast<std::int64_t>(hessians.size()));
  }
  return hessians;
}

// 3. Factorise: one factorisation per input (GPTQ only), shared by its modules' tiles.
Factors factorise(const LayerContext& ctx, const Hessians& hessians, LayerTimings& timings) {
  Factors factors;
  if (ctx.options.method != "gptq") return factors;
  begin(ctx, "factorise", "Hessians", static_cast<std::int64_t>(hessians.size()));
  const ScopedTimer timer(timings.factor);
  for (const auto& [input, h] : hessians) {
    factors[input] = ctx.backend.solver().factorize(*h, ctx.options.gptq);
    advance(ctx, static_cast<std::int64_t>(factors.size()));
  }
  return factors;
}

// 4. Plan tiles: fixed row tiles of every module of the stage, dealt round-robin over the ranks in
// one sequence across the modules (the deal never changes a row's result, only who computes it).
std::map<Linear, TileDeal> deal_tiles(const LayerContext& ctx, const LayerWeights& weights,
                                      const std::vector<Linear>& modules) {
  std::map<Linear, TileDeal> deals;
  std::size_t next = 0;
  const std::int64_t tile_rows = ctx.options.tile_rows;
  for (const Linear l : modules) {
    const std::int64_t rows = weights[l].rows();
    TileDeal& deal = deals[l];
    for (std::int64_t b = 0; b < rows; b += tile_rows, ++next)
      deal.push_back({b, std::min(rows, b + tile_rows),
                      static_cast<int>(next % static_cast<std::size_t>(ctx.comm.size()))});
  }
  return deals;
}

TileJob tile_job(const LayerContext& ctx, Linear l, const TileDeal& deal, const Hessians& hessians,
                 const Factors& factors) {
  const LinearInput input = input_of(l);
  TileJob job;
  job.linear = l;
  job.deal = &deal;
  job.rank = ctx.comm.rank();
  job.factor = factors.empty() ? nullptr : factors.at(input).get();  // null: RTN
  job.hessian = hessians.at(input).get();
  job.options = &ctx.options.gptq;
  job.threads = ctx.options.threads;
  return job;
}

// 5. Solve: this rank's tiles of one module; errors name the module of the weight at fault.
std::unique_ptr<SolvedTiles> solve(ResidentLayer& layer, const TileJob& job,
                                   LayerTimings& timings) {
  const ScopedTimer timer(timings.solve);
  try {
    return layer.quantize_tiles(job);
  } catch (const CollectiveError&) {
    throw;
  } catch (const Error& e) {
    throw Error(str(linear_name(job.linear), ": ", e.what()));
  }
}

// The module's record: method, objectives, damping used, and its weights where they go.
void record_module(const LayerContext& ctx, const TileJob& job,
                   const std::shared_ptr<const QuantizedModule>& module, LayerResults& results) {
  const auto index = static_cast<std::size_t>(job.linear);
  ModuleRecord& r = results.records[index];
  r.method = ctx.options.method;
  if (results.modules != nullptr)
    (*results.modules)[index] = module;
  else if (ctx.host_results)
    r.weight = module->to_host();
  r.objective_gptq = module->objective_gptq;
  r.objective_rtn = module->objective_rtn;
  if (job.factor != nullptr) {
    r.damp_percent_used = job.factor->damp_percent_used;
    r.damp_steps = job.factor->damp_steps;
  }
}

// 6. Exchange: every rank's tiles gathered and installed, so every rank holds the whole module.
void exchange(const LayerContext& ctx, ResidentLayer& layer, std::unique_ptr<SolvedTiles> mine,
              const TileJob& job, LayerTimings& timings, LayerResults& results) {
  const ScopedTimer timer(timings.exchange);
  const std::shared_ptr<const QuantizedModule> module =
      ctx.backend.gather_tiles(std::move(mine), *job.deal, ctx.comm);
  layer.install(job.linear, *module);
  record_module(ctx, job, module, results);
}

// The stage's Hessians and factorisations freed (on a GPU: device memory for the next stage).
void release(Factors& factors, Hessians& hessians, Builders& builders, LayerTimings& timings) {
  const ScopedTimer timer(timings.release);
  factors.clear();
  hessians.clear();
  builders.clear();
}

// One stage of the layer: accumulate, reduce, factorise, plan tiles, then solve and exchange
// module by module.
void quantize_stage(const LayerContext& ctx, const LayerWeights& weights, ResidentLayer& layer,
                    const UnitStore& hidden, const std::vector<Linear>& modules,
                    LayerTimings& timings, LayerResults& results) {
  Builders builders = accumulate(ctx, layer, hidden, modules, timings);
  Hessians hessians = reduce(ctx, builders, timings);
  Factors factors = factorise(ctx, hessians, timings);
  const std::map<Linear, TileDeal> deals = deal_tiles(ctx, weights, modules);
  begin(ctx, "solve and exchange " + names_of(modules), "modules", results.total, results.solved);
  for (const Linear l : modules) {
    const TileJob job = tile_job(ctx, l, deals.at(l), hessians, factors);
    exchange(ctx, layer, solve(layer, job, timings), job, timings, results);
    advance(ctx, ++results.solved);
  }
  release(factors, hessians, builders, timings);
}

}  // namespace

std::vector<ModuleRecord> quantize_layer(const LayerContext& ctx, const LayerWeights& weights,
                                         ResidentLayer& layer, const UnitStore& hidden,
                                         LayerTimings& timings, std::unique_ptr<UnitStore>* next,
                                         QuantizedModules* modules_out) {
  const JobOptions& o = ctx.options;
  LayerResults results = initial_results(weights, modules_out);
  results.total = std::count_if(std::begin(kAllLinears), std::end(kAllLinears),
                                [&o](Linear l) { return selected(o, l); });
  for (const std::vector<LinearInput>& stage : stages_of(o.true_sequential)) {
    const std::vector<Linear> modules = stage_modules(o, stage);
    if (!modules.empty()) quantize_stage(ctx, weights, layer, hidden, modules, timings, results);
  }
  // Modules the job leaves in float are written as they are.
  if (ctx.host_results)
    for (ModuleRecord& r : results.records)
      if (r.method == "none") r.float_weight = weights[r.linear];
  if (next != nullptr) {
    begin(ctx, "forward to the next layer's inputs");
    const ScopedTimer timer(timings.forward);
    *next = layer.forward_all(hidden, o.seq_len);
  }
  return std::move(results.records);
}

}  // namespace qshard
