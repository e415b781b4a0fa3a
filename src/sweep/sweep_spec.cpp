#include "qshard/sweep/sweep_spec.hpp"

#include <limits>
#include <set>
#include <sstream>

#include "qshard/core/error.hpp"
#include "qshard/core/text_file.hpp"

namespace qshard {
namespace fs = std::filesystem;
namespace {

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  const auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

std::int64_t parse_int(const std::string& text, const std::string& where) {
  std::size_t used = 0;
  std::int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  require(used == text.size() && !text.empty(), where, ": expected an integer (got '", text, "')");
  return value;
}

std::vector<std::string> split_values(const std::string& text, const std::string& where) {
  std::vector<std::string> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const std::string value = trim(item);
    require(!value.empty(), where, ": empty value in the list '", text, "'");
    values.push_back(value);
  }
  require(!values.empty(), where, ": no values");
  if (!text.empty() && text.back() == ',')
    throw Error(str(where, ": empty value in the list '", text, "'"));
  const std::set<std::string> unique(values.begin(), values.end());
  require(unique.size() == values.size(), where, ": a value is listed twice in '", text, "'");
  return values;
}

// Keys that qshard-sweep sets itself or that make no sense per point.
bool reserved_grid_key(const std::string& key) {
  return key == "out" || key == "resume" || key == "config" || key == "help" ||
         key == "stop_after_layers";
}

}  // namespace

std::int64_t SweepSpec::point_count() const {
  std::int64_t count = 1;
  for (const GridKey& key : grid) count *= static_cast<std::int64_t>(key.values.size());
  return count;
}

std::string SweepPoint::describe() const {
  std::string text;
  for (const auto& [key, value] : settings) text += (text.empty() ? "" : " ") + key + "=" + value;
  return text;
}

SweepSpec parse_sweep_text(const std::string& text, const fs::path& file) {
  SweepSpec spec;
  spec.file = file;
  std::string section;
  std::set<std::string> seen;
  bool has_base = false, has_tokens = false, has_seq_len = false;
  std::istringstream in(text);
  std::string raw;
  for (int number = 1; std::getline(in, raw); ++number) {
    const std::string where_line = str(file.string(), ":", number);
    const std::string line = trim(raw.substr(0, raw.find_first_of("#;")));
    if (line.empty()) continue;
    if (line.front() == '[') {
      require(line.back() == ']', where_line, ": malformed section header '", line, "'");
      section = trim(line.substr(1, line.size() - 2));
      require(section == "sweep" || section == "grid", where_line, ": unknown section [", section,
              "] (expected [sweep] or [grid])");
      continue;
    }
    const auto equals = line.find('=');
    require(equals != std::string::npos, where_line, ": expected key = value (got '", line, "')");
    const std::string key = trim(line.substr(0, equals));
    const std::string value = trim(line.substr(equals + 1));
    const std::string where = str(where_line, ": key '", key, "'");
    require(!key.empty(), where_line, ": empty key");
    require(!section.empty(), where, " is outside a section (put it under [sweep] or [grid])");
    require(seen.insert(section + "." + key).second, where, " is given twice");
    if (section == "grid") {
      require(!reserved_grid_key(key), where, " cannot be swept (qshard-sweep sets it per point)");
      spec.grid.push_back({key, split_values(value, where)});
      continue;
    }
    require(!value.empty(), where, ": empty value");
    if (key == "base") {
      spec.base = fs::path(value).is_absolute() ? fs::path(value) : file.parent_path() / value;
      has_base = true;
    } else if (key == "out_dir") {
      spec.out_dir = value;
    } else if (key == "eval_tokens") {
      spec.eval_tokens = value;
      has_tokens = true;
    } else if (key == "eval_seq_len") {
      spec.eval_seq_len = parse_int(value, where);
      require(spec.eval_seq_len > 1, where, ": must be at least 2 (got ", value, ")");
      has_seq_len = true;
    } else if (key == "eval_rows") {
      spec.eval_rows = parse_int(value, where);
      require(spec.eval_rows == -1 || spec.eval_rows > 0, where,
              ": -1 (all rows) or positive (got ", value, ")");
    } else {
      throw Error(str(where, " is unknown in [sweep] (expected base, out_dir, eval_tokens, ",
                      "eval_seq_len, eval_rows)"));
    }
  }
  const std::string name = file.string();
  require(has_base, name, ": [sweep] needs base = the qshard-quantize config of every point");
  require(has_tokens, name, ": [sweep] needs eval_tokens = the evaluation token file");
  require(has_seq_len, name, ": [sweep] needs eval_seq_len = tokens per row of eval_tokens");
  require(!spec.grid.empty(), name, ": [grid] lists no keys");
  std::int64_t count = 1;
  for (const GridKey& key : spec.grid) {
    const auto n = static_cast<std::int64_t>(key.values.size());
    require(count <= std::numeric_limits<std::int64_t>::max() / n, name, ": the grid is too large");
    count *= n;
  }
  return spec;
}

SweepSpec parse_sweep(const fs::path& file) { return parse_sweep_text(read_text_file(file), file); }

SweepPoint sweep_point(const SweepSpec& spec, std::int64_t index) {
  const std::int64_t count = spec.point_count();
  require(index >= 0 && index < count, spec.file.string(), ": point ", index,
          " is outside the grid of ", count, " points (0..", count - 1, ")");
  SweepPoint point;
  point.index = index;
  point.settings.resize(spec.grid.size());
  std::int64_t rest = index;
  for (std::size_t k = spec.grid.size(); k-- > 0;) {  // the last key is the least significant digit
    const GridKey& key = spec.grid[k];
    const auto n = static_cast<std::int64_t>(key.values.size());
    point.settings[k] = {key.name, key.values[static_cast<std::size_t>(rest % n)]};
    rest /= n;
  }
  return point;
}

std::vector<SweepPoint> all_points(const SweepSpec& spec) {
  std::vector<SweepPoint> points;
  for (std::int64_t i = 0; i < spec.point_count(); ++i) points.push_back(sweep_point(spec, i));
  return points;
}

}  // namespace qshard
