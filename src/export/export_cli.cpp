#include "qshard/export/export_cli.hpp"

#include <boost/program_options.hpp>
#include <sstream>

#include "qshard/core/app.hpp"
#include "qshard/core/error.hpp"
#include "qshard/export/shard_writer.hpp"

namespace qshard {
namespace po = boost::program_options;
namespace {

// The options given as text, converted once parsed.
struct Raw {
  std::string format = "gptq";
  std::string max_shard_size = "2GB";
  std::string checkpoint_format = "gptq";
};

po::options_description describe_options(ExportOptions& o, Raw& raw) {
  po::options_description d(
      str("qshard-export: write a qshard checkpoint as a Hugging Face model directory\n",
          kOptionConventions, "\n\nOptions"));
  auto add = d.add_options();
  add("help,h", "print this help");
  add("checkpoint", po::value(&o.checkpoint)->value_name("FILE.h5"), "qshard HDF5 checkpoint");
  add("out", po::value(&o.out)->value_name("DIR"),
      "output directory (written as DIR.tmp, renamed when complete)");
  add("model", po::value(&o.model)->value_name("SRC_DIR"),
      "the source model directory: its config.json and tokenizer files are carried over");
  add("format", po::value(&raw.format)->default_value(raw.format),
      "gptq (packed GPTQ safetensors) or float (dense, dequantized fp32 weights)");
  add("max_shard_size", po::value(&raw.max_shard_size)->default_value(raw.max_shard_size),
      "largest safetensors shard (2GB, 500MB, 2GiB, bytes)");
  add("checkpoint_format", po::value(&raw.checkpoint_format)->default_value(raw.checkpoint_format),
      "zero points as gptq (v1: stored zero - 1; refuses zeros of 0) or gptq_v2 (as they are)");
  add("force", switch_value(&o.force), "replace a non-empty output directory");
  return d;
}

}  // namespace

ParsedExportOptions parse_export_options(const std::vector<std::string>& args) {
  ExportOptions options;
  Raw raw;
  const po::options_description description = describe_options(options, raw);
  std::ostringstream help;
  help << description << '\n';
  if (!parse_command_line(description, args)) return {std::nullopt, help.str()};
  options.format = parse_export_format(raw.format);
  options.max_shard_bytes = parse_byte_size(raw.max_shard_size);
  options.zero_format = parse_gptq_format(raw.checkpoint_format, "--checkpoint-format");
  return {options, help.str()};
}

}  // namespace qshard
