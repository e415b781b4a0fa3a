#include "qshard/pipeline/layer_quantizer.hpp"

#include <algorithm>
#include <array>
#include <iostream>
#include <map>
#include <set>
#include <span>

#include "qshard/core/error.hpp"
#include "qshard/core/scoped_timer.hpp"

namespace qshard {
namespace {

using Builders = std::map<InputId, std::unique_ptr<HessianBuilder>>;
using Hessians = std::map<InputId, std::shared_ptr<const Hessian>>;
using Factors = std::map<InputId, std::shared_ptr<const Factorization>>;
using Tokens = std::map<InputId, std::int64_t>;  // calibration tokens of each input, all ranks

// The rank that reduces, factorises and solves a routed expert's inputs (experts dealt in expert
// order); -1 for the inputs every rank holds (attention, dense MLP, shared expert).
int owner_of(const LayerContext& ctx, std::int32_t expert) {
  return expert >= 0 ? static_cast<int>(expert % ctx.comm.size()) : -1;
}
bool holds(const LayerContext& ctx, std::int32_t expert) {
  const int owner = owner_of(ctx, expert);
  return owner < 0 || owner == ctx.comm.rank();
}

// The input whose Hessian module `m` is solved against: its own, except a routed expert's gate/up
// with moe_calibration = all, which share one (every token: the same Hessian for all of them).
InputId hessian_input(const LayerContext& ctx, ModuleId m) {
  const InputId own = input_of(m);
  if (ctx.options.moe_calibration == "all" && m.expert >= 0 && own.kind == LinearInput::Mlp)
    return {LinearInput::Mlp, kEveryExpert};
  return own;
}

MatrixD identity(std::int64_t n) {
  MatrixD m(n, n);
  for (std::int64_t i = 0; i < n; ++i) m(i, i) = 1.0;
  return m;
}

// The layer's results as its stages fill them.
struct LayerResults {
  std::vector<ModuleId> order;        // layer_modules()
  std::vector<ModuleRecord> records;  // in that order
  QuantizedModules* modules = nullptr;
  std::int64_t solved = 0;  // modules solved and exchanged so far
  std::int64_t total = 0;   // modules the layer quantizes

  std::size_t index(ModuleId m) const {
    return static_cast<std::size_t>(std::find(order.begin(), order.end(), m) - order.begin());
  }
};

// The kinds of linear input solved together: (q,k,v) -> o -> (gate,up) -> down when
// true-sequential (a sparse layer's gate/up stage holds every expert's).
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

// The modules of a stage that the job quantizes, in layer order.
std::vector<ModuleId> stage_modules(const JobOptions& o, const std::vector<ModuleId>& layer,
                                    const std::vector<LinearInput>& kinds) {
  std::vector<ModuleId> modules;
  for (const ModuleId m : layer)
    if (selected(o, m.linear) &&
        std::find(kinds.begin(), kinds.end(), input_of(m.linear)) != kinds.end())
      modules.push_back(m);
  return modules;
}

// "q_proj, k_proj, v_proj" (a sparse layer's experts counted: "gate_proj, up_proj of 8 experts"):
// for progress reports.
std::string names_of(const std::vector<ModuleId>& modules) {
  std::string names;
  std::set<std::int32_t> experts;
  for (const ModuleId m : modules) {
    if (m.expert >= 0) experts.insert(m.expert);
    if (m.expert > 0 || m.expert == kSharedExpert) continue;  // named once, by expert 0's
    if (!names.empty()) names += ", ";
    names += linear_name(m.linear);
  }
  if (!experts.empty()) names += str(" of ", experts.size(), " experts");
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
LayerResults initial_results(const LayerContext& ctx, const LayerWeights& weights,
                             QuantizedModules* modules_out) {
  LayerResults results;
  results.order = layer_modules(ctx.config, ctx.layer);
  results.records.resize(results.order.size());
  results.modules = modules_out;
  if (modules_out != nullptr) modules_out->assign(results.order.size(), nullptr);
  for (std::size_t i = 0; i < results.order.size(); ++i) {
    ModuleRecord& r = results.records[i];
    r.module = results.order[i];
    r.method = "none";
    r.bias = weights.bias_of(r.module);
  }
  return results;
}

// One builder per linear input of the stage's modules (allocating its limbs is Hessian work).
Builders make_builders(const LayerContext& ctx, const std::vector<ModuleId>& modules,
                       LayerTimings& timings) {
  const ScopedTimer timer(timings.hessian);
  Builders builders;
  for (const ModuleId m : modules) {
    const InputId input = hessian_input(ctx, m);
    if (builders.count(input) == 0)
      builders[input] = ctx.backend.make_hessian(input_features(ctx.config, input));
  }
  return builders;
}

// 1. Accumulate: forward this rank's units up to the stage's last kind of input, adding each
// unit's X^T X to the partial Hessians of the stage's inputs.
Builders accumulate(const LayerContext& ctx, ResidentLayer& layer, const UnitStore& hidden,
                    const std::vector<ModuleId>& modules, LayerTimings& timings) {
  Builders builders = make_builders(ctx, modules, timings);
  LayerTargets targets;
  LinearInput last = LinearInput::Attention;
  for (const auto& [input, builder] : builders) {
    targets.hessians[input] = builder.get();
    last = std::max(last, input.kind);
  }
  targets.experts =
      ctx.options.moe_calibration == "all" ? ExpertCapture::All : ExpertCapture::Routed;
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

// Every input's calibration tokens summed over the ranks (before reduce_to, after which only an
// owner knows its count).
Tokens total_tokens(const LayerContext& ctx, const Builders& builders) {
  std::vector<std::int64_t> counts;
  for (const auto& entry : builders) counts.push_back(entry.second->tokens());
  ctx.comm.all_reduce_sum(counts);
  Tokens tokens;
  std::size_t i = 0;
  for (const auto& entry : builders) tokens[entry.first] = counts[i++];
  return tokens;
}

// 2. Reduce: the exact integer sum of the partial Hessians: all-reduced where every rank solves
// tiles of the module, reduced to its owner for a routed expert (the reduce-scatter of the
// experts: each owner ends with its experts' whole Hessians, nobody else keeps them). An expert's
// input no calibration token reached has none: its modules are rounded to nearest, their
// objectives taken against the identity (the squared error).
Hessians reduce(const LayerContext& ctx, const Builders& builders, const Tokens& tokens,
                LayerTimings& timings) {
  begin(ctx, "reduce", "Hessians", static_cast<std::int64_t>(builders.size()));
  const ScopedTimer timer(timings.reduce);
  Hessians hessians;
  std::int64_t done = 0;
  for (const auto& [input, builder] : builders) {
    const int owner = owner_of(ctx, input.expert);
    if (owner < 0)
      builder->all_reduce(ctx.comm);
    else
      builder->reduce_to(ctx.comm, owner);
    if (holds(ctx, input.expert))
      hessians[input] = tokens.at(input) > 0
                            ? builder->reduced()
                            : make_host_hessian(identity(input_features(ctx.config, input)));
    advance(ctx, ++done);
  }
  return hessians;
}

// Experts whose Hessians saw fewer than expert_min_tokens calibration tokens, in one line on rank
// 0's standard error (also with --quiet).
void report_rare_experts(const LayerContext& ctx, const Tokens& tokens) {
  std::string rare;
  std::int64_t count = 0;
  for (const auto& [input, n] : tokens) {
    if (input.expert == kDense || input.expert == kEveryExpert || input.kind != LinearInput::Mlp)
      continue;
    if (n >= ctx.options.expert_min_tokens && n > 0) continue;
    ++count;
    rare += str(rare.empty() ? "" : ", ",
                input.expert == kSharedExpert ? std::string("shared") : str(input.expert), " (", n,
                ")");
  }
  if (count > 0 && ctx.comm.is_root())
    std::cerr << str("qshard-quantize: warning: layer ", ctx.layer, ": ", count,
                     " expert(s) saw fewer than ", ctx.options.expert_min_tokens,
                     " calibration tokens (those with 0 are rounded to nearest): ", rare,
                     "; more calibration samples or --moe_calibration all help\n");
}

// 3. Factorise: one factorisation per input this rank holds (GPTQ only), shared by its modules'
// tiles; none for an input no token reached. All of the stage's at once: a GPU overlaps a sparse
// layer's many small ones.
Factors factorise(const LayerContext& ctx, const Tokens& tokens, const Hessians& hessians,
                  LayerTimings& timings) {
  Factors factors;
  if (ctx.options.method != "gptq") return factors;
  std::vector<InputId> inputs;
  std::vector<const Hessian*> matrices;
  for (const auto& [input, h] : hessians) {
    if (tokens.at(input) == 0) continue;
    inputs.push_back(input);
    matrices.push_back(h.get());
  }
  begin(ctx, "factorise", "Hessians", static_cast<std::int64_t>(inputs.size()));
  const ScopedTimer timer(timings.factor);
  std::vector<std::shared_ptr<const Factorization>> results =
      ctx.backend.solver().factorize_many(matrices, ctx.options.gptq);
  for (std::size_t i = 0; i < inputs.size(); ++i) factors[inputs[i]] = std::move(results[i]);
  advance(ctx, static_cast<std::int64_t>(inputs.size()));
  return factors;
}

// 4. Plan tiles: fixed row tiles of every module of the stage, dealt round-robin over the ranks in
// one sequence across the modules, a routed expert's all to its owner (the deal never changes a
// row's result, only who computes it).
std::map<ModuleId, TileDeal> deal_tiles(const LayerContext& ctx, const LayerWeights& weights,
                                        const std::vector<ModuleId>& modules) {
  std::map<ModuleId, TileDeal> deals;
  std::size_t next = 0;
  const std::int64_t tile_rows = ctx.options.tile_rows;
  for (const ModuleId m : modules) {
    const std::int64_t rows = weights[m].rows();
    const int owner = owner_of(ctx, m.expert);
    TileDeal& deal = deals[m];
    for (std::int64_t b = 0; b < rows; b += tile_rows) {
      const int rank = owner >= 0 ? owner : static_cast<int>(next++ % ctx.comm.size());
      deal.push_back({b, std::min(rows, b + tile_rows), rank});
    }
  }
  return deals;
}

TileJob tile_job(const LayerContext& ctx, ModuleId m, const TileDeal& deal,
                 const Hessians& hessians, const Factors& factors) {
  const InputId input = hessian_input(ctx, m);
  TileJob job;
  job.module = m;
  job.deal = &deal;
  job.rank = ctx.comm.rank();
  const auto factor = factors.find(input);
  job.factor = factor == factors.end() ? nullptr : factor->second.get();  // null: RTN
  const auto hessian = hessians.find(input);  // none: another rank owns the expert
  job.hessian = hessian == hessians.end() ? nullptr : hessian->second.get();
  job.options = &ctx.options.gptq;
  job.threads = ctx.options.threads;
  return job;
}

// 5. Solve: this rank's tiles of one module; errors name the module of the weight at fault.
std::unique_ptr<SolvedTiles> solve(const LayerContext& ctx, ResidentLayer& layer,
                                   const TileJob& job, LayerTimings& timings) {
  const ScopedTimer timer(timings.solve);
  try {
    return layer.quantize_tiles(job);
  } catch (const CollectiveError&) {
    throw;
  } catch (const Error& e) {
    throw Error(str(checkpoint_module_name(ctx.config, job.module), ": ", e.what()));
  }
}

// The module's record: method, objectives, damping used (a routed expert's from its owner), and
// its weights where they go.
void record_module(const LayerContext& ctx, const TileJob& job, std::int64_t tokens,
                   const std::shared_ptr<const QuantizedModule>& module, LayerResults& results) {
  const std::size_t index = results.index(job.module);
  ModuleRecord& r = results.records[index];
  r.method = ctx.options.method == "gptq" && tokens > 0 ? "gptq" : "rtn";
  r.calibration_tokens = tokens;
  if (results.modules != nullptr)
    (*results.modules)[index] = module;
  else if (ctx.host_results)
    r.weight = module->to_host();
  r.objective_gptq = module->objective_gptq;
  r.objective_rtn = module->objective_rtn;
  std::array<double, 2> damping = {0.0, 0.0};
  if (job.factor != nullptr)
    damping = {job.factor->damp_percent_used, static_cast<double>(job.factor->damp_steps)};
  if (const int owner = owner_of(ctx, hessian_input(ctx, job.module).expert);
      owner >= 0 && r.method == "gptq")
    ctx.comm.broadcast(std::as_writable_bytes(std::span(damping)), owner);
  r.damp_percent_used = damping[0];
  r.damp_steps = static_cast<std::int64_t>(damping[1]);
}

// 6. Exchange: every rank's tiles gathered and installed, so every rank holds the whole module.
void exchange(const LayerContext& ctx, ResidentLayer& layer, std::unique_ptr<SolvedTiles> mine,
              const TileJob& job, std::int64_t tokens, LayerTimings& timings,
              LayerResults& results) {
  const ScopedTimer timer(timings.exchange);
  const std::shared_ptr<const QuantizedModule> module =
      ctx.backend.gather_tiles(std::move(mine), *job.deal, ctx.comm);
  layer.install(job.module, *module);
  record_module(ctx, job, tokens, module, results);
}

// The stage's Hessians and factorisations freed (on a GPU: device memory for the next stage).
void release(Factors& factors, Hessians& hessians, Builders& builders, LayerTimings& timings) {
  const ScopedTimer timer(timings.release);
  factors.clear();
  hessians.clear();
  builders.clear();
}

// One pass over a stage's modules: accumulate, reduce, factorise, plan tiles, solve every module's
// tiles of this rank, then exchange module by module.
void quantize_pass(const LayerContext& ctx, const LayerWeights& weights, ResidentLayer& layer,
                   const UnitStore& hidden, const std::vector<ModuleId>& modules,
                   LayerTimings& timings, LayerResults& results) {
  Builders builders = accumulate(ctx, layer, hidden, modules, timings);
  Tokens tokens;
  {
    const ScopedTimer timer(timings.reduce);
    tokens = total_tokens(ctx, builders);
  }
  Hessians hessians = reduce(ctx, builders, tokens, timings);
  report_rare_experts(ctx, tokens);
  Factors factors = factorise(ctx, tokens, hessians, timings);
  const std::map<ModuleId, TileDeal> deals = deal_tiles(ctx, weights, modules);
  // Every module's tiles solved first, then exchanged module by module: a rank never waits in a
  // module's exchange for another rank's solve (a routed expert's rows are all its owner's, so
  // solving and exchanging one module at a time would leave the other ranks idle).
  begin(ctx, "solve " + names_of(modules), "modules", static_cast<std::int64_t>(modules.size()));
  std::vector<TileJob> jobs;
  std::vector<std::unique_ptr<SolvedTiles>> solved;
  for (const ModuleId m : modules) {
    jobs.push_back(tile_job(ctx, m, deals.at(m), hessians, factors));
    solved.push_back(solve(ctx, layer, jobs.back(), timings));
    advance(ctx, static_cast<std::int64_t>(solved.size()));
  }
  begin(ctx, "exchange " + names_of(modules), "modules", results.total, results.solved);
  for (std::size_t i = 0; i < modules.size(); ++i) {
    exchange(ctx, layer, std::move(solved[i]), jobs[i], tokens.at(hessian_input(ctx, modules[i])),
             timings, results);
    advance(ctx, ++results.solved);
  }
  release(factors, hessians, builders, timings);
}

// The passes of a stage: all its modules at once, or with expert_batch the routed experts in
// batches of that many (the other modules with the first), each pass one forward of the units.
std::vector<std::vector<ModuleId>> passes_of(const JobOptions& o,
                                             const std::vector<ModuleId>& modules) {
  if (o.expert_batch <= 0) return {modules};
  std::vector<std::vector<ModuleId>> passes(1);
  for (const ModuleId m : modules) {
    const std::size_t pass =
        m.expert >= 0 ? static_cast<std::size_t>(m.expert / o.expert_batch) : 0;
    if (passes.size() <= pass) passes.resize(pass + 1);
    passes[pass].push_back(m);
  }
  std::erase_if(passes, [](const std::vector<ModuleId>& p) { return p.empty(); });
  return passes;
}

// One stage of the layer, pass by pass.
void quantize_stage(const LayerContext& ctx, const LayerWeights& weights, ResidentLayer& layer,
                    const UnitStore& hidden, const std::vector<ModuleId>& modules,
                    LayerTimings& timings, LayerResults& results) {
  for (const std::vector<ModuleId>& pass : passes_of(ctx.options, modules))
    quantize_pass(ctx, weights, layer, hidden, pass, timings, results);
}

}  // namespace

std::vector<ModuleRecord> quantize_layer(const LayerContext& ctx, const LayerWeights& weights,
                                         ResidentLayer& layer, const UnitStore& hidden,
                                         LayerTimings& timings, std::unique_ptr<UnitStore>* next,
                                         QuantizedModules* modules_out) {
  const JobOptions& o = ctx.options;
  LayerResults results = initial_results(ctx, weights, modules_out);
  results.total = std::count_if(results.order.begin(), results.order.end(),
                                [&o](ModuleId m) { return selected(o, m.linear); });
  for (const std::vector<LinearInput>& stage : stages_of(o.true_sequential)) {
    const std::vector<ModuleId> modules = stage_modules(o, results.order, stage);
    if (!modules.empty()) quantize_stage(ctx, weights, layer, hidden, modules, timings, results);
  }
  // Modules the job leaves in float are written as they are.
  if (ctx.host_results)
    for (ModuleRecord& r : results.records)
      if (r.method == "none") r.float_weight = weights[r.module];
  if (next != nullptr) {
    begin(ctx, "forward to the next layer's inputs");
    const ScopedTimer timer(timings.forward);
    *next = layer.forward_all(hidden, o.seq_len);
  }
  return std::move(results.records);
}

}  // namespace qshard
