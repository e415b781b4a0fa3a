#include "qshard/sweep/report.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "qshard/core/error.hpp"
#include "qshard/sweep/process.hpp"
#include "qshard/sweep/results.hpp"

namespace qshard {
namespace fs = std::filesystem;
using nlohmann::json;
namespace {

// Keys shown in their own columns; every other grid key gets a column after them.
const std::set<std::string> kFixedKeys = {"method", "bits", "group_size"};

std::int64_t group_order(const json& r) {  // -1 (one group per row) sorts after every size
  const std::int64_t g = r.at("group_size").get<std::int64_t>();
  return g < 0 ? std::numeric_limits<std::int64_t>::max() : g;
}

std::string method_of(const json& r) { return r.at("method").get<std::string>(); }

// The RTN baseline first, then the other methods by name.
std::pair<bool, std::string> method_order(const json& r) {
  return {method_of(r) != "rtn", method_of(r)};
}

std::string text_of(const json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

std::string format(const char* spec, double value) {
  char text[64];
  std::snprintf(text, sizeof text, spec, value);
  return text;
}

std::string group_label(const json& r) {
  const std::int64_t g = r.at("group_size").get<std::int64_t>();
  return g < 0 ? std::string("per row") : std::to_string(g);
}

std::string method_label(const std::string& method) {
  std::string upper = method;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  return upper;
}

// Grid keys other than method/bits/group_size, in order of first appearance.
std::vector<std::string> extra_keys(const std::vector<json>& records) {
  std::vector<std::string> keys;
  for (const json& r : records)
    for (const auto& [key, value] : r.at("settings").items())
      if (!kFixedKeys.count(key) && std::find(keys.begin(), keys.end(), key) == keys.end())
        keys.push_back(key);
  return keys;
}

std::string setting(const json& r, const std::string& key) {
  const json& settings = r.at("settings");
  return settings.contains(key) ? text_of(settings.at(key)) : "";
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string gnuplot_string(const std::string& text) {  // single quotes: '' is a quote
  std::string quoted = "'";
  for (const char c : text) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  return quoted + "'";
}

// Records without a field the report needs are rejected with their index.
void check_record(const json& r) {
  for (const char* key : {"index", "settings", "method", "bits", "group_size", "perplexity", "kl",
                          "top1", "bits_per_weight", "model_bytes", "checkpoint_hash"}) {
    require(r.contains(key), "results record ", r.value("index", json(-1)).dump(), " has no '", key,
            "'");
  }
}

}  // namespace

std::vector<json> sorted_results(std::vector<json> records) {
  for (const json& r : records) check_record(r);
  // A point recorded twice (a requeued task) counts once: its last line.
  std::map<std::string, std::size_t> last;
  for (std::size_t i = 0; i < records.size(); ++i)
    last[records[i].at("index").dump() + records[i].at("settings").dump()] = i;
  std::vector<json> unique;
  for (std::size_t i = 0; i < records.size(); ++i)
    if (last[records[i].at("index").dump() + records[i].at("settings").dump()] == i)
      unique.push_back(records[i]);
  std::stable_sort(unique.begin(), unique.end(), [](const json& a, const json& b) {
    const auto key = [](const json& r) {
      return std::make_tuple(group_order(r), method_order(r), r.at("bits").get<std::int64_t>(),
                             r.at("index").get<std::int64_t>());
    };
    return key(a) < key(b);
  });
  return unique;
}

std::string markdown_table(const std::vector<json>& sorted) {
  const std::vector<std::string> extras = extra_keys(sorted);
  std::ostringstream out;
  out << "| point | group | method | bits |";
  for (const std::string& key : extras) out << ' ' << key << " |";
  out << " bits/weight | size (bytes) | perplexity | fp32 perplexity | mean KL (nats) | top-1 | "
         "time (s) |"
         " ranks | checkpoint hash |\n|---:|---:|---|---:|";
  for (std::size_t i = 0; i < extras.size(); ++i) out << "---:|";
  out << "---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const json& r : sorted) {
    out << "| " << r.at("index").get<std::int64_t>() << " | " << group_label(r) << " | "
        << method_label(method_of(r)) << " | " << r.at("bits").get<std::int64_t>() << " |";
    for (const std::string& key : extras) out << ' ' << setting(r, key) << " |";
    out << ' ' << format("%.3f", r.at("bits_per_weight").get<double>()) << " | "
        << r.at("model_bytes").get<std::int64_t>() << " | "
        << format("%.3f", r.at("perplexity").get<double>()) << " | "
        << format("%.3f", r.value("fp32_perplexity", 0.0)) << " | "
        << format("%.5f", r.at("kl").get<double>()) << " | "
        << format("%.2f %%", 100.0 * r.at("top1").get<double>()) << " | "
        << format("%.1f", r.value("time_s", 0.0)) << " | " << r.value("ranks", std::int64_t{0})
        << " | `" << r.at("checkpoint_hash").get<std::string>() << "` |\n";
  }
  return out.str();
}

std::string csv_table(const std::vector<json>& sorted) {
  const std::vector<std::string> extras = extra_keys(sorted);
  const std::vector<std::string> tail = {"bits_per_weight",
                                         "model_bytes",
                                         "quantized_bytes",
                                         "quantized_weights",
                                         "perplexity",
                                         "fp32_perplexity",
                                         "kl",
                                         "top1",
                                         "time_s",
                                         "eval_time_s",
                                         "ranks",
                                         "seed",
                                         "calibration_hash",
                                         "checkpoint_hash",
                                         "commit"};
  std::ostringstream out;
  out << "index,group_size,method,bits";
  for (const std::string& key : extras) out << ',' << csv_field(key);
  for (const std::string& key : tail) out << ',' << key;
  out << '\n';
  for (const json& r : sorted) {
    out << r.at("index").dump() << ',' << r.at("group_size").dump() << ','
        << csv_field(method_of(r)) << ',' << r.at("bits").dump();
    for (const std::string& key : extras) out << ',' << csv_field(setting(r, key));
    for (const std::string& key : tail)
      out << ',' << (r.contains(key) ? csv_field(text_of(r.at(key))) : "");
    out << '\n';
  }
  return out.str();
}

// The nominal setting a point is labelled with: "w4 g32", "w3 row" (its bits per weight on the
// x axis is larger: scales, zeros and g_idx).
std::string point_label(const json& r) {
  const std::int64_t g = r.at("group_size").get<std::int64_t>();
  const int bits = r.at("bits").get<int>();
  return g < 0 ? str("w", bits, " row") : str("w", bits, " g", g);
}

std::string gnuplot_script(const std::vector<json>& sorted, const fs::path& png,
                           const fs::path& svg) {
  // One series per (group size, other grid keys, method); one colour per group size (and other
  // grid keys) when there are several, else one per method; RTN dashed with open points, GPTQ
  // solid with filled points; every point labelled with its nominal bits and group.
  const std::vector<std::string> extras = extra_keys(sorted);
  struct Point {
    double bits_per_weight, perplexity;
    std::string label;
    bool operator<(const Point& o) const { return bits_per_weight < o.bits_per_weight; }
  };
  struct Series {
    std::string colour_key, method, title;
    std::vector<Point> points;
  };
  std::vector<Series> series;
  std::vector<std::string> colour_keys;
  double low = 0.0, high = 0.0;   // the perplexities' range, for the y axis
  for (const json& r : sorted) {  // sorted: group size, method, bits
    std::string colour_key = "group " + group_label(r);
    for (const std::string& key : extras) colour_key += ", " + key + "=" + setting(r, key);
    const std::string method = method_of(r);
    if (std::find(colour_keys.begin(), colour_keys.end(), colour_key) == colour_keys.end())
      colour_keys.push_back(colour_key);
    auto it = std::find_if(series.begin(), series.end(), [&](const Series& s) {
      return s.colour_key == colour_key && s.method == method;
    });
    if (it == series.end()) {
      series.push_back({colour_key, method, colour_key + " " + method_label(method), {}});
      it = series.end() - 1;
    }
    const double ppl = r.at("perplexity").get<double>();
    it->points.push_back({r.at("bits_per_weight").get<double>(), ppl, point_label(r)});
    low = low == 0.0 ? ppl : std::min(low, ppl);
    high = std::max(high, ppl);
  }
  const bool one_colour_key = colour_keys.size() == 1;
  const char* palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                           "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  std::ostringstream out;
  out << "# Written by qshard-sweep --report: perplexity against bits per weight.\n";
  for (std::size_t i = 0; i < series.size(); ++i) {
    std::sort(series[i].points.begin(), series[i].points.end());
    out << "$s" << i << " << EOD\n";
    for (const Point& p : series[i].points)
      out << format("%.6f", p.bits_per_weight) << ' ' << format("%.6g", p.perplexity) << " \""
          << p.label << "\"\n";
    out << "EOD\n";
  }
  const bool has_fp = !sorted.empty() && sorted.front().contains("fp32_perplexity");
  const double fp = has_fp ? sorted.front().at("fp32_perplexity").get<double>() : 0.0;
  if (has_fp) {
    low = low == 0.0 ? fp : std::min(low, fp);
    high = std::max(high, fp);
  }
  const std::string model = sorted.empty()
                                ? std::string()
                                : fs::path(sorted.front().value("model", "")).filename().string();
  out << "set title "
      << gnuplot_string("perplexity vs bits per weight" + (model.empty() ? "" : ": " + model))
      << " noenhanced\nset xlabel 'bits per weight (codes + scales + zeros + g\\_idx)'\nset ylabel "
         "'perplexity'\n"
         "set logscale y\nset grid\nset key top right\n";
  if (high > 0.0)  // the data's range with a margin (labels sit above their points)
    out << "set yrange [" << format("%.6g", low / 1.15) << ":" << format("%.6g", high * 1.6)
        << "]\n";
  std::ostringstream plot;
  plot << "plot ";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const bool rtn = s.method == "rtn";
    const auto colour = one_colour_key
                            ? std::size_t{rtn ? 1u : 0u}
                            : static_cast<std::size_t>(
                                  std::find(colour_keys.begin(), colour_keys.end(), s.colour_key) -
                                  colour_keys.begin());
    const char* rgb = palette[colour % std::size(palette)];
    plot << (i ? ", \\\n     " : "") << "$s" << i << " using 1:2 with linespoints lw 2 lc rgb '"
         << rgb << "' dt " << (rtn ? 2 : 1) << " pt " << (rtn ? 6 : 7) << " title "
         << gnuplot_string(s.title) << " noenhanced";  // act_order: an underscore, not a subscript
    plot << ", \\\n     $s" << i << " using 1:2:3 with labels offset 0,0.9 font ',8' tc rgb '"
         << rgb << "' notitle noenhanced";
  }
  if (has_fp) {
    plot << ", \\\n     " << format("%.6g", fp) << " with lines lw 1 lc rgb 'black' dt 3 title "
         << gnuplot_string("floating point: " + format("%.4g", fp));
  }
  out << "set terminal pngcairo size 960,640 font ',11'\nset output "
      << gnuplot_string(png.string()) << '\n'
      << plot.str() << "\nset terminal svg size 960,640 font ',11'\nset output "
      << gnuplot_string(svg.string()) << "\nreplot\nunset output\n";
  return out.str();
}

ReportFiles write_report(const fs::path& results, const fs::path& out_dir, bool run_gnuplot) {
  const std::vector<json> sorted = sorted_results(read_result_lines(results));
  require(!sorted.empty(), results.string(), ": no results to report");
  fs::create_directories(out_dir);
  const ReportFiles files{out_dir / "report.md", out_dir / "report.csv", out_dir / "report.gp",
                          out_dir / "report.png", out_dir / "report.svg"};
  const auto write = [](const fs::path& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
    require(out.good(), "cannot write ", path.string());
  };
  write(files.markdown, "Sweep report of " + results.string() + "\n\n" + markdown_table(sorted) +
                            "\n![perplexity vs bits per weight](" + files.png.filename().string() +
                            ")\n");
  write(files.csv, csv_table(sorted));
  write(files.script, gnuplot_script(sorted, files.png, files.svg));
  if (run_gnuplot) {
    const int status = run_process({"gnuplot", files.script.string()});
    require(status == 0, "gnuplot ", files.script.string(), " failed with status ", status,
            " (install gnuplot-nox: scripts/setup.sh)");
  }
  return files;
}

}  // namespace qshard
