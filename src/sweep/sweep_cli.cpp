#include "qshard/sweep/sweep_cli.hpp"
#include "qshard/pipeline/backend_factory.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdlib>
#include <iomanip>
#include <optional>
#include <sstream>

#include "qshard/backend/backend.hpp"
#include "qshard/core/app.hpp"
#include "qshard/core/error.hpp"
#include "qshard/sweep/process.hpp"
#include "qshard/sweep/report.hpp"
#include "qshard/sweep/sweep_run.hpp"
#include "qshard/sweep/sweep_spec.hpp"

namespace qshard {
namespace fs = std::filesystem;
namespace po = boost::program_options;
namespace {

struct CliOptions {
  std::string sweep;
  bool list = false;
  bool count = false;
  std::optional<std::int64_t> index;
  bool report = false;
  std::string results;
  std::string out_dir;
  std::optional<std::string> launcher;
  std::string quantize_bin;
  std::string eval_backend = "auto";
  std::vector<std::string> extra_args;  // after "--": appended to qshard-quantize's arguments
};

po::options_description describe(CliOptions& o, std::optional<std::int64_t>& index,
                                 std::optional<std::string>& launcher) {
  po::options_description d(str(
      "qshard-sweep: grids of qshard-quantize settings (configs/sweep-*.ini)\n\n"
      "  qshard-sweep --sweep FILE --list            the grid: point index and settings\n"
      "  qshard-sweep --sweep FILE --count           the number of points (for --array=0-(N-1))\n"
      "  qshard-sweep --sweep FILE --index N [-- ARGS] quantize point N, evaluate it, append its\n"
      "                                              line to OUT_DIR/results.jsonl (ARGS go to\n"
      "                                              qshard-quantize)\n"
      "  qshard-sweep --report --results FILE --out_dir DIR   report.md, report.csv, report.gp\n"
      "                                              (the gnuplot script) and the plot it draws,\n"
      "                                              report.png and report.svg\n\n",
      kOptionConventions, "\n\nOptions"));
  d.add_options()("help,h", "print this help")("sweep", po::value(&o.sweep), "the sweep file")(
      "list", switch_value(&o.list), "print the grid")("count", switch_value(&o.count),
                                                       "print the number of grid points")(
      "index", po::value<std::int64_t>()->notifier([&](std::int64_t v) { index = v; }),
      "run grid point N (e.g. $SLURM_ARRAY_TASK_ID)")(
      "launcher", po::value<std::string>()->notifier([&](const std::string& v) { launcher = v; }),
      "command that starts qshard-quantize's ranks, split at spaces (\"mpirun -np 2\", \"srun "
      "--mpi=pmix\"); default: $QSHARD_LAUNCHER, else none (one process)")(
      "eval_backend", po::value(&o.eval_backend)->default_value(o.eval_backend),
      "--index: where the evaluation's decoder layers run: cpu, cuda or auto (GPU 0 when the build "
      "has CUDA and a GPU is visible, else the CPU; the CPU gives the reference figures)")(
      "quantize_bin", po::value(&o.quantize_bin),
      "the qshard-quantize executable (default: beside qshard-sweep)")(
      "out_dir", po::value(&o.out_dir),
      "--index: overrides the sweep's out_dir; --report: where the report goes")(
      "report", switch_value(&o.report),
      "write the report of a results file: report.md, report.csv, report.gp, report.png, "
      "report.svg")("results", po::value(&o.results),
                    "--report: the results.jsonl (default OUT_DIR/results.jsonl)");
  return d;
}

// Every point is checked as qshard-quantize would parse it before the grid is printed.
void print_list(const SweepSpec& spec, std::ostream& out) {
  for (const SweepPoint& point : all_points(spec)) check_point_options(spec, point);
  out << spec.point_count() << " points of " << spec.file.string() << " (base "
      << spec.base.string() << ")\n";
  for (const SweepPoint& point : all_points(spec))
    out << std::setw(4) << std::setfill('0') << point.index << std::setfill(' ') << "  "
        << point.describe() << '\n';
}

int run(const std::vector<std::string>& all_args, const fs::path& self, std::ostream& out) {
  CliOptions o;
  std::optional<std::int64_t> index;
  std::optional<std::string> launcher;
  const po::options_description description = describe(o, index, launcher);
  const auto separator = std::find(all_args.begin(), all_args.end(), "--");
  const std::vector<std::string> args(all_args.begin(), separator);
  if (separator != all_args.end()) o.extra_args.assign(separator + 1, all_args.end());
  if (!parse_command_line(description, args)) {
    out << description << '\n';
    return 0;
  }
  const int modes = int(o.list) + int(o.count) + int(index.has_value()) + int(o.report);
  require(modes == 1, "give exactly one of --list, --count, --index N, --report (see --help)");
  if (o.report) {
    fs::path results = o.results;
    if (results.empty()) {
      require(!o.sweep.empty(), "--report: give --results FILE (or --sweep FILE for its out_dir)");
      results = parse_sweep(o.sweep).out_dir / "results.jsonl";
    }
    const fs::path out_dir = o.out_dir.empty() ? results.parent_path() : fs::path(o.out_dir);
    const ReportFiles files = write_report(results, out_dir.empty() ? fs::path(".") : out_dir);
    out << "qshard-sweep: wrote " << files.markdown.string() << ", " << files.csv.string() << ", "
        << files.script.string() << ", " << files.png.string() << ", " << files.svg.string()
        << '\n';
    return 0;
  }
  require(!o.sweep.empty(), "give the sweep file with --sweep FILE");
  const SweepSpec spec = parse_sweep(o.sweep);
  if (o.list) {
    print_list(spec, out);
    return 0;
  }
  if (o.count) {
    out << spec.point_count() << '\n';
    return 0;
  }
  PointRunOptions run_options;
  const char* env_launcher = std::getenv("QSHARD_LAUNCHER");
  run_options.launcher = split_command(launcher ? *launcher : env_launcher ? env_launcher : "");
  run_options.quantize_bin =
      o.quantize_bin.empty() ? self.parent_path() / "qshard-quantize" : fs::path(o.quantize_bin);
  run_options.out_dir = o.out_dir;
  run_options.extra_args = o.extra_args;
  // The CPU backend's layers are the evaluation's own forward: only another backend runs them.
  const EvaluationBackend eval_backend = make_evaluation_backend(o.eval_backend);
  run_options.eval_runner = eval_backend.runner;
  run_point(spec, *index, run_options, out);
  return 0;
}

}  // namespace

int run_sweep_cli(const std::vector<std::string>& args, const fs::path& self, std::ostream& out,
                  std::ostream& err, const App& app) {
  return run_app(
      app, [&] { return run(args, self, out); }, err);
}

}  // namespace qshard
