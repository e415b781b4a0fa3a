#include "qshard/pipeline/layer_quantizer.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Flat little-endian serialisation of solved tiles for the all-gather.
class ByteWriter {
 public:
  template <typename T>
  void put(const T& value) {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  template <typename T>
  void put_span(std::span<const T> values) {
    const auto* p = reinterpret_cast<const std::byte*>(values.data());
    bytes_.insert(bytes_.end(), p, p + values.size_bytes());
  }
  std::vector<std::byte>& bytes() { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> bytes) : bytes_(bytes) {}
  bool done() const { return offset_ == bytes_.size(); }
  template <typename T>
  T get() {
    T value;
    read(&value, sizeof(T));
    return value;
  }
  template <typename T>
  void get_span(std::span<T> out) {
    read(out.data(), out.size_bytes());
  }

 private:
  void read(void* dst, std::size_t n) {
    require(offset_ + n <= bytes_.size(), "corrupt tile exchange message");
    std::memcpy(dst, bytes_.data() + offset_, n);
    offset_ += n;
  }
  std::span<const std::byte> bytes_;
  std::size_t offset_ = 0;
};

struct SolvedTile {
  std::int32_t module = 0;  // index into kAllLinears
  std::int32_t tile = 0;
  QuantizedWeight weight;
  double objective_gptq = 0.0;
  double objective_rtn = 0.0;
};

void write_tile(ByteWriter& w, const SolvedTile& t) {
  const QuantizedWeight& q = t.weight;
  w.put(t.module);
  w.put(t.tile);
  w.put(static_cast<std::int32_t>(q.bits));
  w.put(q.group_size);
  w.put(q.rows());
  w.put(q.cols());
  w.put(q.groups());
  w.put(t.objective_gptq);
  w.put(t.objective_rtn);
  w.put_span<std::uint8_t>(q.codes.values());
  w.put_span<float>(q.scales.values());
  w.put_span<std::int32_t>(q.zeros.values());
  w.put_span<std::int32_t>(q.g_idx);
}

SolvedTile read_tile(ByteReader& r) {
  SolvedTile t;
  t.module = r.get<std::int32_t>();
  t.tile = r.get<std::int32_t>();
  QuantizedWeight& q = t.weight;
  q.bits = r.get<std::int32_t>();
  q.group_size = r.get<std::int64_t>();
  const auto rows = r.get<std::int64_t>();
  const auto cols = r.get<std::int64_t>();
  const auto groups = r.get<std::int64_t>();
  t.objective_gptq = r.get<double>();
  t.objective_rtn = r.get<double>();
  q.codes = Matrix<std::uint8_t>(rows, cols);
  q.scales = MatrixF(rows, groups);
  q.zeros = Matrix<std::int32_t>(rows, groups);
  q.g_idx.resize(static_cast<std::size_t>(cols));
  r.get_span<std::uint8_t>(q.codes.values());
  r.get_span<float>(q.scales.values());
  r.get_span<std::int32_t>(q.zeros.values());
  r.get_span<std::int32_t>(q.g_idx);
  return t;
}

MatrixF row_slice(const MatrixF& m, std::int64_t begin, std::int64_t end) {
  MatrixF out(end - begin, m.cols());
  std::copy(m.data() + begin * m.cols(), m.data() + end * m.cols(), out.data());
  return out;
}

// Runs fn(0), ..., fn(count - 1) on up to `threads` threads (work items must be independent).
template <typename Fn>
void parallel_for(std::size_t count, int threads, const Fn& fn) {
  const std::size_t workers =
      std::min<std::size_t>(count, static_cast<std::size_t>(std::max(threads, 1)));
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto run = [&] {
    for (std::size_t i = next++; i < count; i = next++) {
      try {
        fn(i);
      } catch (...) {
        const std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < workers; ++t) pool.emplace_back(run);
  run();
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

struct Stage {
  std::vector<LinearInput> inputs;
};

std::vector<Stage> stages_of(bool true_sequential) {
  if (!true_sequential)
    return {{{LinearInput::Attention, LinearInput::AttentionOutput, LinearInput::Mlp,
              LinearInput::MlpDown}}};
  return {{{LinearInput::Attention}},
          {{LinearInput::AttentionOutput}},
          {{LinearInput::Mlp}},
          {{LinearInput::MlpDown}}};
}

}  // namespace

std::vector<ModuleRecord> quantize_layer(const LayerContext& ctx, LayerWeights& weights,
                                         const UnitStore& hidden, LayerTimings& timings,
                                         std::unique_ptr<UnitStore>* next) {
  const JobOptions& o = ctx.options;
  const auto selected = [&](Linear l) {
    return std::find(o.modules.begin(), o.modules.end(), l) != o.modules.end();
  };
  const std::unique_ptr<ResidentLayer> resident =
      ctx.backend.load_layer(ctx.config, weights, ctx.rope);
  ResidentLayer& layer = *resident;
  std::vector<ModuleRecord> records(std::size(kAllLinears));
  for (const Linear l : kAllLinears) {
    ModuleRecord& r = records[static_cast<std::size_t>(l)];
    r.linear = l;
    r.method = "none";
    r.bias = weights.bias[static_cast<std::size_t>(l)];
    r.float_weight = weights[l];
  }

  for (const Stage& stage : stages_of(o.true_sequential)) {
    std::vector<LinearInput> inputs;
    for (const LinearInput input : stage.inputs) {
      const bool any = std::any_of(std::begin(kAllLinears), std::end(kAllLinears),
                                   [&](Linear l) { return input_of(l) == input && selected(l); });
      if (any) inputs.push_back(input);
    }
    if (inputs.empty()) continue;

    // 1. Forward this rank's units, accumulating partial Hessians of the stage's inputs.
    std::map<LinearInput, std::unique_ptr<HessianBuilder>> builders;
    LayerTargets targets;
    for (const LinearInput input : inputs) {
      builders[input] = ctx.backend.make_hessian(input_features(ctx.config, input));
      targets.hessians[static_cast<std::size_t>(input)] = builders[input].get();
    }
    const LinearInput last = *std::max_element(inputs.begin(), inputs.end());
    const auto forward_start = Clock::now();
    for (std::size_t u = 0; u < hidden.size(); ++u)
      layer.forward_unit(hidden, u, o.seq_len, targets, last);
    double hessian_seconds = 0.0;  // on a GPU the products run asynchronously: device time
    for (const auto& [input, builder] : builders) hessian_seconds += builder->add_seconds();
    timings.forward += std::max(0.0, seconds_since(forward_start) - hessian_seconds);
    timings.hessian += hessian_seconds;

    // 2. Exact all-reduce of the partial Hessians; every rank factorises the same H.
    auto start = Clock::now();
    for (auto& [input, builder] : builders) builder->all_reduce(ctx.comm);
    timings.reduce += seconds_since(start);

    start = Clock::now();
    std::map<LinearInput, MatrixD> hessians;
    std::map<LinearInput, HessianFactor> factors;
    for (auto& [input, builder] : builders) {
      hessians[input] = builder->hessian();
      if (o.method == "gptq")
        factors[input] = ctx.backend.solver().factorize(hessians[input], o.gptq);
    }

    // 3. Fixed row tiles of every selected module, dealt round-robin over the ranks.
    struct Work {
      Linear linear;
      std::int32_t tile;
      std::int64_t begin, end;
    };
    std::vector<Work> work;
    for (const Linear l : kAllLinears) {
      if (!selected(l) || std::find(inputs.begin(), inputs.end(), input_of(l)) == inputs.end())
        continue;
      const std::int64_t rows = weights[l].rows();
      for (std::int64_t b = 0, t = 0; b < rows; b += o.tile_rows, ++t)
        work.push_back({l, static_cast<std::int32_t>(t), b, std::min(rows, b + o.tile_rows)});
    }
    std::vector<std::size_t> my_work;
    for (std::size_t i = 0; i < work.size(); ++i)
      if (static_cast<int>(i % static_cast<std::size_t>(ctx.comm.size())) == ctx.comm.rank())
        my_work.push_back(i);
    const Solver& solver = ctx.backend.solver();
    // GPTQ of this rank's tiles: one call per module with the tiles stacked where the solver's
    // rows are independent of each other (the same bits as tile by tile, and a GPU kept busy).
    std::map<std::size_t, QuantizedWeight> solved_tiles;
    if (o.method == "gptq") {
      for (const Linear l : kAllLinears) {
        std::vector<std::size_t> tiles;
        for (const std::size_t i : my_work)
          if (work[i].linear == l) tiles.push_back(i);
        if (tiles.empty()) continue;
        const HessianFactor& factor = factors.at(input_of(l));
        if (!solver.rows_independent()) {
          for (const std::size_t i : tiles)
            solved_tiles[i] =
                solver.solve(row_slice(weights[l], work[i].begin, work[i].end), factor, o.gptq);
          continue;
        }
        std::int64_t rows = 0;
        for (const std::size_t i : tiles) rows += work[i].end - work[i].begin;
        MatrixF stacked(rows, weights[l].cols());
        std::int64_t offset = 0;
        for (const std::size_t i : tiles) {
          std::copy(weights[l].data() + work[i].begin * stacked.cols(),
                    weights[l].data() + work[i].end * stacked.cols(),
                    stacked.data() + offset * stacked.cols());
          offset += work[i].end - work[i].begin;
        }
        const QuantizedWeight all = solver.solve(stacked, factor, o.gptq);
        offset = 0;
        for (const std::size_t i : tiles) {
          const std::int64_t n = work[i].end - work[i].begin;
          solved_tiles[i] = all.slice_rows(offset, offset + n);
          offset += n;
        }
      }
    }
    // RTN and the dequantized weights of each tile (pure host work: o.threads threads, one module
    // at a time to bound memory), then the objectives through the solver (on its device).
    ByteWriter mine;
    for (const Linear l : kAllLinears) {
      std::vector<std::size_t> tiles;
      for (const std::size_t i : my_work)
        if (work[i].linear == l) tiles.push_back(i);
      if (tiles.empty()) continue;
      struct Prepared {
        MatrixF tile, rtn, gptq;
        SolvedTile solved;
      };
      std::vector<Prepared> prepared(tiles.size());
      parallel_for(tiles.size(), o.threads, [&](std::size_t k) {
        const Work& w = work[tiles[k]];
        Prepared& p = prepared[k];
        p.tile = row_slice(weights[l], w.begin, w.end);
        p.solved.module = static_cast<std::int32_t>(l);
        p.solved.tile = w.tile;
        QuantizedWeight rtn = quantize_rtn(p.tile, o.gptq.quant);
        p.rtn = rtn.dequantize();
        p.solved.weight =
            o.method == "gptq" ? std::move(solved_tiles.at(tiles[k])) : std::move(rtn);
        p.gptq = p.solved.weight.dequantize();
      });
      const MatrixD& h = hessians.at(input_of(l));
      for (Prepared& p : prepared) {
        p.solved.objective_rtn = solver.objective(p.tile, p.rtn, h);
        p.solved.objective_gptq = solver.objective(p.tile, p.gptq, h);
        write_tile(mine, p.solved);
      }
    }
    timings.solve += seconds_since(start);

    // 4. All-gather the tiles; every rank assembles the quantized modules in tile order.
    start = Clock::now();
    const std::vector<std::byte> all = ctx.comm.all_gather(mine.bytes());
    std::map<std::pair<int, int>, SolvedTile> tiles;
    ByteReader reader(all);
    while (!reader.done()) {
      SolvedTile t = read_tile(reader);
      tiles.emplace(std::make_pair(t.module, t.tile), std::move(t));
    }
    require(tiles.size() == work.size(), "tile exchange: got ", tiles.size(), " tiles, expected ",
            work.size());
    for (const Linear l : kAllLinears) {
      std::vector<QuantizedWeight> parts;
      double objective_gptq = 0.0, objective_rtn = 0.0;
      for (auto& [key, t] : tiles) {
        if (key.first != static_cast<int>(l)) continue;
        objective_gptq += t.objective_gptq;
        objective_rtn += t.objective_rtn;
        parts.push_back(std::move(t.weight));
      }
      if (parts.empty()) continue;
      ModuleRecord& r = records[static_cast<std::size_t>(l)];
      r.method = o.method;
      r.weight = stack_rows(parts);
      r.float_weight = MatrixF();
      r.objective_gptq = objective_gptq;
      r.objective_rtn = objective_rtn;
      if (o.method == "gptq") {
        r.damp_percent_used = factors.at(input_of(l)).damp_percent_used;
        r.damp_steps = factors.at(input_of(l)).damp_steps;
      }
      weights[l] = r.weight.dequantize();
      layer.refresh(l);
    }
    timings.gather += seconds_since(start);
  }
  if (next != nullptr) {
    const auto start = Clock::now();
    *next = layer.forward_all(hidden, o.seq_len);
    timings.forward += seconds_since(start);
  }
  return records;
}

}  // namespace qshard
