#include "qshard/pipeline/layer_quantizer.hpp"

#include <algorithm>
#include <map>

#include "qshard/core/error.hpp"
#include "qshard/core/scoped_timer.hpp"

namespace qshard {
namespace {

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

// 1. Forward this rank's units, accumulating partial Hessians of the stage's inputs.
std::map<LinearInput, std::unique_ptr<HessianBuilder>> accumulate(
    const LayerContext& ctx, ResidentLayer& layer, const UnitStore& hidden,
    const std::vector<Linear>& modules, LayerTimings& timings) {
  std::map<LinearInput, std::unique_ptr<HessianBuilder>> builders;
  LayerTargets targets;
  for (const Linear l : modules) {
    const LinearInput input = input_of(l);
    if (builders.count(input) != 0) continue;
    builders[input] = ctx.backend.make_hessian(input_features(ctx.config, input));
    targets.hessians[static_cast<std::size_t>(input)] = builders[input].get();
  }
  const LinearInput last =
      std::max_element(builders.begin(), builders.end(), [](const auto& a, const auto& b) {
        return a.first < b.first;
      })->first;
  double seconds = 0.0;
  {
    const ScopedTimer timer(seconds);
    for (std::size_t u = 0; u < hidden.size(); ++u)
      layer.forward_unit(hidden, u, ctx.options.seq_len, targets, last);
    for (const auto& entry : builders) (void)entry.second->add_seconds();  // synchronises
  }
  double hessian_seconds = 0.0;  // on a GPU the products run asynchronously: device time
  for (const auto& entry : builders) hessian_seconds += entry.second->add_seconds();
  timings.forward += std::max(0.0, seconds - hessian_seconds);
  timings.hessian += std::min(seconds, hessian_seconds);
  return builders;
}

// 3. Fixed row tiles of every module of the stage, dealt round-robin over the ranks in one
// sequence across the modules (the deal never changes a row's result, only who computes it).
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

}  // namespace

std::vector<ModuleRecord> quantize_layer(const LayerContext& ctx, const LayerWeights& weights,
                                         ResidentLayer& layer, const UnitStore& hidden,
                                         LayerTimings& timings, std::unique_ptr<UnitStore>* next,
                                         QuantizedModules* modules_out) {
  const JobOptions& o = ctx.options;
  const bool gptq = o.method == "gptq";
  std::vector<ModuleRecord> records(std::size(kAllLinears));
  if (modules_out != nullptr) modules_out->assign(std::size(kAllLinears), nullptr);
  for (const Linear l : kAllLinears) {
    ModuleRecord& r = records[static_cast<std::size_t>(l)];
    r.linear = l;
    r.method = "none";
    r.bias = weights.bias[static_cast<std::size_t>(l)];
  }

  for (const std::vector<LinearInput>& stage : stages_of(o.true_sequential)) {
    const std::vector<Linear> modules = stage_modules(o, stage);
    if (modules.empty()) continue;
    auto builders = accumulate(ctx, layer, hidden, modules, timings);

    // 2. Exact all-reduce of the partial Hessians: every rank holds the same H.
    std::map<LinearInput, std::shared_ptr<const Hessian>> hessians;
    {
      const ScopedTimer timer(timings.reduce);
      for (const auto& [input, builder] : builders) {
        builder->all_reduce(ctx.comm);
        hessians[input] = builder->reduced();
      }
    }
    // One factorisation per input, shared by its modules' tiles.
    std::map<LinearInput, std::shared_ptr<const Factorization>> factors;
    if (gptq) {
      const ScopedTimer timer(timings.factor);
      for (const auto& [input, h] : hessians)
        factors[input] = ctx.backend.solver().factorize(*h, o.gptq);
    }

    const std::map<Linear, TileDeal> deals = deal_tiles(ctx, weights, modules);
    for (const Linear l : modules) {
      const LinearInput input = input_of(l);
      TileJob job;
      job.linear = l;
      job.deal = &deals.at(l);
      job.rank = ctx.comm.rank();
      job.factor = gptq ? factors.at(input).get() : nullptr;
      job.hessian = hessians.at(input).get();
      job.options = &o.gptq;
      job.threads = o.threads;
      // 4. This rank's tiles, then 5. the exchange: every rank installs the whole module.
      std::unique_ptr<SolvedTiles> mine;
      {
        const ScopedTimer timer(timings.solve);
        try {
          mine = layer.quantize_tiles(job);
        } catch (const CollectiveError&) {
          throw;
        } catch (const Error& e) {
          throw Error(str(linear_name(l), ": ", e.what()));  // the module of the weight at fault
        }
      }
      const ScopedTimer timer(timings.exchange);
      const std::shared_ptr<const QuantizedModule> module =
          ctx.backend.gather_tiles(std::move(mine), *job.deal, ctx.comm);
      layer.install(l, *module);
      ModuleRecord& r = records[static_cast<std::size_t>(l)];
      r.method = o.method;
      if (modules_out != nullptr)
        (*modules_out)[static_cast<std::size_t>(l)] = module;
      else if (ctx.host_results)
        r.weight = module->to_host();
      r.objective_gptq = module->objective_gptq;
      r.objective_rtn = module->objective_rtn;
      if (gptq) {
        r.damp_percent_used = factors.at(input)->damp_percent_used;
        r.damp_steps = factors.at(input)->damp_steps;
      }
    }
    const ScopedTimer timer(timings.release);  // the stage's Hessians and factorisations
    factors.clear();
    hessians.clear();
    builders.clear();
  }
  // Modules the job leaves in float are written as they are.
  if (ctx.host_results)
    for (ModuleRecord& r : records)
      if (r.method == "none") r.float_weight = weights[r.linear];
  if (next != nullptr) {
    const ScopedTimer timer(timings.forward);
    *next = layer.forward_all(hidden, o.seq_len);
  }
  return records;
}

}  // namespace qshard
