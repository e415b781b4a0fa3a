// The apps' command-line harness: parsing conventions and one error line per failure.
#include "qshard/core/app.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "error_text.hpp"
#include "qshard/core/error.hpp"

namespace qshard {
namespace {
namespace po = boost::program_options;

struct Options {
  std::string name = "none";
  int count = 1;
  bool json = false;
  bool on = true;
};

po::options_description describe(Options& o) {
  po::options_description d("test");
  d.add_options()("help,h", "help")("config", po::value<std::string>(), "INI file")(
      "long_name", po::value(&o.name)->default_value(o.name), "a text")(
      "count", po::value(&o.count)->default_value(o.count), "a number")(
      "json", switch_value(&o.json), "a switch, default false")("on", switch_value(&o.on),
                                                                "a switch, default true");
  return d;
}

Options parse(const std::vector<std::string>& args) {
  Options o;
  const auto d = describe(o);
  EXPECT_TRUE(parse_command_line(d, args).has_value());
  return o;
}

TEST(App, OptionNamesWithDashOrUnderscore) {
  EXPECT_EQ(parse({"--long-name", "a"}).name, "a");
  EXPECT_EQ(parse({"--long_name=b"}).name, "b");
}

TEST(App, SwitchesAloneAreTrueAndTakeAValue) {
  EXPECT_FALSE(parse({}).json);
  EXPECT_TRUE(parse({}).on);
  EXPECT_TRUE(parse({"--json"}).json);
  EXPECT_TRUE(parse({"--json", "--count", "3"}).json);
  EXPECT_FALSE(parse({"--json=false"}).json);
  EXPECT_FALSE(parse({"--json", "false"}).json);
  EXPECT_TRUE(parse({"--json=true"}).json);
  EXPECT_FALSE(parse({"--on=false"}).on);
  EXPECT_FALSE(parse({"--on", "0"}).on);
}

TEST(App, StrayWordsAndUnknownOptionsAreRefused) {
  Options o;
  const auto d = describe(o);
  const std::string stray = test::error_of([&] { parse_command_line(d, {"--count", "2", "x"}); });
  EXPECT_TRUE(test::has(stray, "unexpected argument 'x'")) << stray;
  const std::string unknown = test::error_of([&] { parse_command_line(d, {"--colour"}); });
  EXPECT_TRUE(test::has(unknown, "colour")) << unknown;
  EXPECT_TRUE(test::has(unknown, "(see --help)")) << unknown;
  const std::string bad = test::error_of([&] { parse_command_line(d, {"--count", "many"}); });
  EXPECT_TRUE(test::has(bad, "(see --help)")) << bad;
}

TEST(App, HelpReturnsNothing) {
  Options o;
  const auto d = describe(o);
  EXPECT_FALSE(parse_command_line(d, {"--help"}).has_value());
  EXPECT_FALSE(parse_command_line(d, {"-h", "--count", "2"}).has_value());
}

TEST(App, ConfigFileMergesAndTheCommandLineWins) {
  const std::filesystem::path ini =
      std::filesystem::temp_directory_path() / ("qshard-app-test-" + std::to_string(getpid()));
  std::ofstream(ini) << "long_name = from_ini\ncount = 7\njson = true\n";
  const Options o = parse({"--config", ini.string(), "--count", "9"});
  EXPECT_EQ(o.name, "from_ini");
  EXPECT_EQ(o.count, 9);
  EXPECT_TRUE(o.json);
  std::ofstream(ini) << "colour = red\n";
  Options bad;
  const auto d = describe(bad);
  EXPECT_TRUE(test::has(test::error_of([&] {
                          parse_command_line(d, {"--config", ini.string()});
                        }),
                        "colour"));
  std::filesystem::remove(ini);
  EXPECT_TRUE(test::has(test::error_of([&] {
                          parse_command_line(d, {"--config", ini.string()});
                        }),
                        "cannot read config file"));
}

int run(const App& app, const std::function<int()>& body, std::string& err) {
  std::ostringstream stream;
  const int code = run_app(app, body, stream);
  err = stream.str();
  return code;
}

TEST(App, EveryFailureIsOneLineAndExitCodeOne) {
  const App app{"qshard-test", {}, {}};
  std::string err;
  EXPECT_EQ(run(
                app, [] { return 3; }, err),
            3);
  EXPECT_EQ(err, "");
  EXPECT_EQ(run(
                app, []() -> int { throw Error("bad input"); }, err),
            1);
  EXPECT_EQ(err, "qshard-test: error: bad input\n");
  EXPECT_EQ(run(
                app, []() -> int { throw std::runtime_error("other"); }, err),
            1);
  EXPECT_EQ(err, "qshard-test: error: other\n");
  EXPECT_EQ(run(
                app, []() -> int { throw 42; }, err),
            1);
  EXPECT_EQ(err, "qshard-test: error: unknown exception\n");
  EXPECT_EQ(run(
                app, []() -> int { throw po::unknown_option("--x"); }, err),
            1);
  EXPECT_EQ(err, "qshard-test: error: unrecognised option '--x' (see --help)\n");
  const App failing_start{"qshard-test", [] { throw Error("no library"); }, {}};
  EXPECT_EQ(run(
                failing_start, [] { return 0; }, err),
            1);
  EXPECT_EQ(err, "qshard-test: error: no library\n");
}

TEST(App, FailurePolicyDecidesWhoPrintsAndWhatFollows) {
  int aborted = 0;
  App app{"qshard-test", {}, [&](const std::exception* e) {
            if (dynamic_cast<const Error*>(e) != nullptr) return FailureReport{"", false, {}};
            return FailureReport{" (rank 1)", true, [&] { ++aborted; }};
          }};
  std::string err;
  EXPECT_EQ(run(
                app, []() -> int { throw Error("shared"); }, err),
            1);
  EXPECT_EQ(err, "");
  EXPECT_EQ(aborted, 0);
  EXPECT_EQ(run(
                app, []() -> int { throw std::runtime_error("mine"); }, err),
            1);
  EXPECT_EQ(err, "qshard-test: error (rank 1): mine\n");
  EXPECT_EQ(aborted, 1);
}

}  // namespace
}  // namespace qshard
