#pragma once
// The one command-line harness of the apps: parsing (option names with - or _, words that are not
// options refused, --help, an INI --config file), and every failure as one line
// "qshard-NAME: error: WHAT" with exit code 1.
#include <boost/program_options.hpp>
#include <exception>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace qshard {

// The line every app's help header carries about spelling and switches.
inline constexpr std::string_view kOptionConventions =
    "Option names may be written with - or _ (--seq-len or --seq_len).\n"
    "A switch alone means true; --name=false or --name false turns it off.";

// A switch (boolean option): `--name` alone is true; `--name=false`, `--name false` (also
// true/1/0/yes/no/on/off) set it. Its default is *target.
boost::program_options::typed_value<bool>* switch_value(bool* target);

// Parses `args` (without argv[0]) with `options`: names normalised (normalise_option_names), words
// that are not options refused, then, when `options` has "config" and it was given, the keys of
// that INI file (the command line wins). Returns nullopt when "--help" was given (the caller
// prints the help). Boost's errors become qshard::Error ending "(see --help)". notify() has run.
std::optional<boost::program_options::variables_map> parse_command_line(
    const boost::program_options::options_description& options,
    const std::vector<std::string>& args);

// How one process reports a failure (an MPI rank: which of them print, and what follows).
struct FailureReport {
  std::string where;  // written after "error": " (rank 1)"; empty for one process
  bool print = true;  // false: another process prints it for all (rank 0, a collective error)
  std::function<void()> then;  // after printing, e.g. abort the other ranks
};
// Decides the report of an exception (nullptr for one that is not a std::exception).
using FailurePolicy = std::function<FailureReport(const std::exception*)>;

struct App {
  std::string name;             // "qshard-eval": the start of every error line
  std::function<void()> start;  // runs first inside the harness (e.g. library set-up)
  FailurePolicy on_failure;     // empty: print every failure, nothing after
};

// Runs app.start then `body` and returns body's exit code. Any exception becomes one line
// "NAME: error[WHERE]: WHAT" on `err` (one write: lines of several ranks never interleave) and
// exit code 1; a Boost.Program_options error ends "(see --help)".
int run_app(const App& app, const std::function<int()>& body, std::ostream& err);

}  // namespace qshard
