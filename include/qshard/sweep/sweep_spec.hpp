#pragma once
// A sweep file (INI, configs/sweep-*.ini): a base qshard-quantize config and a grid of values.
//
//   [sweep]                        settings of the sweep itself
//   base = stories260k.ini         qshard-quantize config, relative to the sweep file
//   out_dir = sweep-stories260k    checkpoints and results.jsonl (relative to the working dir)
//   eval_tokens = FILE.i32         evaluation tokens (relative to the working dir)
//   eval_seq_len = 256             tokens per row of eval_tokens
//   eval_rows = -1                 evaluate only the first rows (-1: all)
//   [grid]                         qshard-quantize keys, each with a comma list of values
//   group_size = 32,-1
//   method = rtn,gptq
//   bits = 2,3,4,8
//
// The grid expands row-major: keys in file order, the last key varying fastest, so point N is
// the mixed-radix number N with one digit per key (the last key the least significant).
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace qshard {

struct GridKey {
  std::string name;
  std::vector<std::string> values;
};

struct SweepSpec {
  std::filesystem::path file;  // the sweep file as given
  std::filesystem::path base;  // the base config, resolved against the sweep file's folder
  std::filesystem::path out_dir = "sweep";
  std::string eval_tokens;
  std::int64_t eval_seq_len = 0;
  std::int64_t eval_rows = -1;
  std::vector<GridKey> grid;  // in file order

  std::int64_t point_count() const;  // product of the value counts
};

// One grid point: (key, value) in the grid's key order.
struct SweepPoint {
  std::int64_t index = 0;
  std::vector<std::pair<std::string, std::string>> settings;

  std::string describe() const;  // "bits=4 group_size=32 method=gptq"
};

// Parses a sweep file; throws qshard::Error naming the file, line and key.
SweepSpec parse_sweep(const std::filesystem::path& file);
SweepSpec parse_sweep_text(const std::string& text, const std::filesystem::path& file);

// Point `index` of the grid; throws naming the sweep file when out of [0, point_count()).
SweepPoint sweep_point(const SweepSpec& spec, std::int64_t index);
std::vector<SweepPoint> all_points(const SweepSpec& spec);

}  // namespace qshard
