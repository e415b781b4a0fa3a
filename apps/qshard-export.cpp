// qshard-export: a qshard checkpoint as a Hugging Face directory in the GPTQ safetensors format
// (or dense, dequantized), for serving engines and the reference GPTQ tools.
#include <boost/program_options.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "qshard/core/cli.hpp"
#include "qshard/core/error.hpp"
#include "qshard/export/export_job.hpp"
#include "qshard/export/shard_writer.hpp"
#include "qshard/io/hdf5.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  qshard::ExportOptions o;
  std::string format = "gptq", shard_size = "2GB", checkpoint_format = "gptq";
  po::options_description d(
      "qshard-export: write a qshard checkpoint as a Hugging Face model directory\n"
      "(options may be written with - or _: --max-shard-size or --max_shard_size)\n\nOptions");
  d.add_options()("help,h", "print this help")(
      "checkpoint", po::value(&o.checkpoint)->value_name("FILE.h5"), "qshard HDF5 checkpoint")(
      "out", po::value(&o.out)->value_name("DIR"),
      "output directory (written as DIR.tmp, renamed when complete)")(
      "model", po::value(&o.model)->value_name("SRC_DIR"),
      "the source model directory: its config.json and tokenizer files are carried over")(
      "format", po::value(&format)->default_value(format),
      "gptq (packed GPTQ safetensors) or float (dense, dequantized fp32 weights)")(
      "max_shard_size", po::value(&shard_size)->default_value(shard_size),
      "largest safetensors shard (2GB, 500MB, 2GiB, bytes)")(
      "checkpoint_format", po::value(&checkpoint_format)->default_value(checkpoint_format),
      "zero points as gptq (v1: stored zero - 1; refuses zeros of 0) or gptq_v2 (as they are)")(
      "force", po::bool_switch(&o.force), "replace a non-empty output directory");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(qshard::normalise_option_names({argv + 1, argv + argc}))
                  .options(d)
                  .run(),
              vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << d << '\n';
      return 0;
    }
    o.format = qshard::parse_export_format(format);
    o.max_shard_bytes = qshard::parse_byte_size(shard_size);
    o.zero_format = qshard::parse_gptq_format(checkpoint_format, "--checkpoint-format");
    qshard::h5::silence_library_errors();
    qshard::run_export(o, std::cout);
    return 0;
  } catch (const po::error& e) {
    std::cerr << "qshard-export: error: " << e.what() << " (see --help)\n";
  } catch (const std::exception& e) {  // std::bad_alloc too: one line
    std::cerr << "qshard-export: error: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "qshard-export: error: unknown exception\n";
  }
  return 1;
}
