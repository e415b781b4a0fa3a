// qshard-inspect: prints what a model directory or a qshard checkpoint holds.
#include <boost/program_options.hpp>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>

#include "qshard/core/error.hpp"
#include "qshard/export/model_writer.hpp"
#include "qshard/export/shard_writer.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/checkpoint_hash.hpp"
#include "qshard/io/hdf5_app.hpp"
#include "qshard/io/inspect.hpp"
#include "qshard/model/synthetic_source.hpp"

namespace po = boost::program_options;

namespace {

struct InspectOptions {
  std::string model, checkpoint, write_synthetic, out, max_shard_size = "5GB";
  std::uint64_t seed = 0;
  bool tensors = false, hash = false, verify = false, force = false;
};

po::options_description describe(InspectOptions& o) {
  po::options_description d(qshard::str("qshard-inspect: print the contents of a model\n",
                                        qshard::kOptionConventions, "\n\nOptions"));
  // One option per kind of input; main dispatches on the one given.
  auto add = d.add_options();
  add("help,h", "print this help");
  add("model", po::value(&o.model)->value_name("DIR"),
      "a Hugging Face model directory (config.json and *.safetensors): its config, a summary of "
      "its tensors (count, parameters and bytes by dtype, files, decoder layers) and what is "
      "missing");
  add("tensors", qshard::switch_value(&o.tensors), "with --model: list every tensor");
  add("checkpoint", po::value(&o.checkpoint)->value_name("FILE.h5"),
      "a qshard HDF5 checkpoint: provenance, layers, bits, groups, sizes, objectives");
  add("hash", qshard::switch_value(&o.hash),
      "with --checkpoint: print only its content hash (recomputed from the quantized modules' "
      "data; the file's @content_hash)");
  add("verify", qshard::switch_value(&o.verify),
      "with --checkpoint: read and check everything (every dataset's checksum, every module's "
      "content hash, the file hash, @layers, g_idx, scales); exits 1 naming the first failure");
  add("write_synthetic", po::value(&o.write_synthetic)->value_name("NAME"),
      "write the synthetic model NAME (as --model synthetic:NAME of qshard-quantize) to --out as "
      "a Hugging Face directory: config.json and safetensors shards in its dtype with an index");
  add("out", po::value(&o.out)->value_name("DIR"), "with --write_synthetic: the directory");
  add("seed", po::value(&o.seed)->default_value(o.seed),
      "with --write_synthetic: the weights' seed (qshard-quantize's model_seed)");
  add("max_shard_size", po::value(&o.max_shard_size)->default_value(o.max_shard_size),
      "with --write_synthetic: the largest shard");
  add("force", qshard::switch_value(&o.force), "with --write_synthetic: replace a non-empty --out");
  return d;
}

int inspect(const InspectOptions& o) {
  if (!o.write_synthetic.empty()) {
    qshard::require(!o.out.empty(), "--write_synthetic needs --out DIR");
    const auto source = qshard::open_synthetic_model(o.write_synthetic, o.seed);
    const auto written =
        qshard::write_hf_model(*source, o.out, qshard::parse_byte_size(o.max_shard_size), o.force);
    std::cout << "wrote " << source->describe() << " to " << o.out << ": " << written.tensors
              << " tensors, " << written.shards << " shard(s), " << written.bytes << " bytes\n";
    return 0;
  }
  if (!o.model.empty()) {
    qshard::inspect_model(o.model, std::cout, o.tensors);
    return 0;
  }
  qshard::require(!o.checkpoint.empty(), "give --model DIR or --checkpoint FILE.h5 (see --help)");
  if (o.hash) {
    std::cout << qshard::hex64(qshard::hash_quantized_tensors(o.checkpoint)) << '\n';
    return 0;
  }
  if (o.verify) {
    const qshard::CheckpointVerification v = qshard::verify_checkpoint(o.checkpoint);
    std::cout << "verified: " << v.modules << " modules, hash " << qshard::hex64(v.hash)
              << (v.format_version == 1 ? " (format 1: no stored hashes to compare)" : "") << '\n';
    return 0;
  }
  qshard::print_checkpoint_summary(qshard::Checkpoint(o.checkpoint), std::cout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return qshard::run_app(
      qshard::hdf5_app("qshard-inspect"),
      [&] {
        InspectOptions o;
        const po::options_description options = describe(o);
        if (!qshard::parse_command_line(options, {argv + 1, argv + argc})) {
          std::cout << options << '\n';
          return 0;
        }
        return inspect(o);
      },
      std::cerr);
}
