// libFuzzer target: the INI --config files of qshard-quantize (src/pipeline/job_options.cpp,
// Boost.Program_options). Accepted options must validate and serialise.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "qshard/pipeline/job_options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, const std::size_t size) {
  const qshard::fuzz::InputFile file(data, size, ".ini");
  qshard::fuzz::refused_or_parsed([&] {
    const std::vector<std::string> args = {"--config", file.path().string()};
    const qshard::ParsedOptions parsed = qshard::parse_job_options(args);
    qshard::fuzz::check(parsed.options.has_value(), "options without --help");
    parsed.options->validate();
    static volatile std::size_t sink;
    sink = parsed.options->to_json().size() + parsed.options->result_key().size();
  });
  return 0;
}
