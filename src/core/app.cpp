#include "qshard/core/app.hpp"

#include <fstream>
#include <sstream>

#include "qshard/core/cli.hpp"
#include "qshard/core/error.hpp"

namespace qshard {
namespace po = boost::program_options;
namespace {

// The hidden positional option that collects stray words, so they can be named.
constexpr const char* kStrayWords = "qshard-stray-words";

void refuse_stray_words(const po::variables_map& vm) {
  if (!vm.count(kStrayWords)) return;
  const auto& words = vm[kStrayWords].as<std::vector<std::string>>();
  throw Error(str("unexpected argument '", words.front(),
                  "': every argument is an option (--name VALUE or --name=VALUE)"));
}

void store_config_file(const po::options_description& options, po::variables_map& vm) {
  const std::string path = vm["config"].as<std::string>();
  std::ifstream file(path);
  require(file.good(), "cannot read config file '", path, "'");
  std::stringstream text;
  text << file.rdbuf();
  check_option_text(text.str(), str("config file '", path, "'"));
  // Stored after the command line: values already given there win.
  po::store(po::parse_config_file(text, options, /*allow_unregistered=*/false), vm);
}

}  // namespace

po::typed_value<bool>* switch_value(bool* target) {
  return po::value(target)
      ->default_value(*target, *target ? "true" : "false")
      ->implicit_value(true, "true")
      ->value_name("BOOL");
}

std::optional<po::variables_map> parse_command_line(const po::options_description& options,
                                                    const std::vector<std::string>& args) {
  po::options_description all;
  all.add(options).add_options()(kStrayWords, po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add(kStrayWords, -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(normalise_option_names(args))
                  .options(all)
                  .positional(positional)
                  .run(),
              vm);
    refuse_stray_words(vm);
    if (vm.count("help")) return std::nullopt;
    if (options.find_nothrow("config", false) != nullptr && vm.count("config"))
      store_config_file(options, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(str(e.what(), " (see --help)"));
  }
  return vm;
}

int run_app(const App& app, const std::function<int()>& body, std::ostream& err) {
  const auto fail = [&](const std::exception* e, const std::string& what) {
    const FailureReport report = app.on_failure ? app.on_failure(e) : FailureReport{};
    if (report.print) {
      const std::string line = str(app.name, ": error", report.where, ": ", what, '\n');
      err.write(line.data(), static_cast<std::streamsize>(line.size()));
      err.flush();
    }
    if (report.then) report.then();
    return 1;
  };
  try {
    if (app.start) app.start();
    return body();
  } catch (const po::error& e) {
    return fail(&e, str(e.what(), " (see --help)"));
  } catch (const std::exception& e) {  // std::bad_alloc too: one line
    return fail(&e, e.what());
  } catch (...) {
    return fail(nullptr, "unknown exception");
  }
}

}  // namespace qshard
