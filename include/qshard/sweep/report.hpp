#pragma once
// qshard-sweep --report: the results of a sweep as a Markdown table, a CSV file and a plot of
// perplexity against bits per weight (gnuplot: one line per group size, RTN dashed, GPTQ solid).
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qshard {

// The records sorted by group size (-1, one group per row, last), method (RTN first), bits,
// then index; a point recorded twice (a requeued task) once, by its last line.
std::vector<nlohmann::json> sorted_results(std::vector<nlohmann::json> records);

std::string markdown_table(const std::vector<nlohmann::json>& sorted);
std::string csv_table(const std::vector<nlohmann::json>& sorted);
// A gnuplot script writing `png` and `svg` (the data inline as datablocks).
std::string gnuplot_script(const std::vector<nlohmann::json>& sorted,
                           const std::filesystem::path& png, const std::filesystem::path& svg);

struct ReportFiles {
  std::filesystem::path markdown, csv, script, png, svg;
};
// Writes report.md, report.csv and report.gp into `out_dir`, and runs `gnuplot` (when
// `run_gnuplot`) to draw report.png and report.svg; throws when gnuplot fails.
ReportFiles write_report(const std::filesystem::path& results, const std::filesystem::path& out_dir,
                         bool run_gnuplot = true);

}  // namespace qshard
