// qshard-inspect: prints what a model directory or a qshard checkpoint holds.
#include <boost/program_options.hpp>
#include <iostream>
#include <string>

#include "qshard/core/error.hpp"
#include "qshard/export/model_writer.hpp"
#include "qshard/export/shard_writer.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/checkpoint_hash.hpp"
#include "qshard/io/inspect.hpp"
#include "qshard/model/synthetic_source.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  po::options_description options("qshard-inspect: print the contents of a model\n\nOptions");
  // One option per kind of input; main dispatches on the one given.
  options.add_options()("help,h", "print this help")(
      "model", po::value<std::string>()->value_name("DIR"),
      "a Hugging Face model directory (config.json and *.safetensors)")(
      "checkpoint", po::value<std::string>()->value_name("FILE.h5"),
      "a qshard HDF5 checkpoint: provenance, layers, bits, groups, sizes, objectives")(
      "hash",
      "with --checkpoint: print only its content hash (recomputed from the quantized modules' "
      "data; the file's @content_hash)")(
      "verify",
      "with --checkpoint: read and check everything (every dataset's checksum, every module's "
      "content hash, the file hash, @layers, g_idx, scales); exits 1 naming the first failure")(
      "write-synthetic", po::value<std::string>()->value_name("NAME"),
      "write the synthetic model NAME (as --model synthetic:NAME of qshard-quantize) "
      "to --out as a Hugging Face directory: config.json and safetensors shards in "
      "its dtype with an index")("out", po::value<std::string>()->value_name("DIR"),
                                 "with --write-synthetic: the directory")(
      "seed", po::value<std::uint64_t>()->default_value(0),
      "with --write-synthetic: the weights' seed (qshard-quantize's model_seed)")(
      "max-shard-size", po::value<std::string>()->default_value("5GB"),
      "with --write-synthetic: the largest shard")(
      "force", "with --write-synthetic: replace a non-empty --out");
  try {
    po::variables_map args;
    po::store(po::command_line_parser(argc, argv).options(options).run(), args);
    po::notify(args);
    if (args.count("help")) {
      std::cout << options << '\n';
      return 0;
    }
    if (args.count("write-synthetic")) {
      if (!args.count("out")) throw qshard::Error("--write-synthetic needs --out DIR");
      const auto source = qshard::open_synthetic_model(args["write-synthetic"].as<std::string>(),
                                                       args["seed"].as<std::uint64_t>());
      const auto written =
          qshard::write_hf_model(*source, args["out"].as<std::string>(),
                                 qshard::parse_byte_size(args["max-shard-size"].as<std::string>()),
                                 args.count("force") != 0);
      std::cout << "wrote " << source->describe() << " to " << args["out"].as<std::string>() << ": "
                << written.tensors << " tensors, " << written.shards << " shard(s), "
                << written.bytes << " bytes\n";
      return 0;
    }
    if (args.count("model")) {
      qshard::inspect_model(args["model"].as<std::string>(), std::cout);
      return 0;
    }
    if (args.count("checkpoint")) {
      qshard::h5::silence_library_errors();
      const std::string path = args["checkpoint"].as<std::string>();
      if (args.count("hash")) {
        std::cout << qshard::hex64(qshard::hash_quantized_tensors(path)) << '\n';
        return 0;
      }
      if (args.count("verify")) {
        const qshard::CheckpointVerification v = qshard::verify_checkpoint(path);
        std::cout << "verified: " << v.modules << " modules, hash " << qshard::hex64(v.hash)
                  << (v.format_version == 1 ? " (format 1: no stored hashes to compare)" : "")
                  << '\n';
        return 0;
      }
      qshard::print_checkpoint_summary(qshard::Checkpoint(path), std::cout);
      return 0;
    }
    std::cerr << "qshard-inspect: error: give --model DIR or --checkpoint FILE.h5 (see --help)\n";
    return 1;
  } catch (const po::error& e) {
    std::cerr << "qshard-inspect: error: " << e.what() << " (see --help)\n";
    return 1;
  } catch (const std::exception& e) {  // bad_alloc of an absurd model too: one line
    std::cerr << "qshard-inspect: error: " << e.what() << '\n';
    return 1;
  }
}
