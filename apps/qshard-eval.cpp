// qshard-eval: perplexity, KL divergence and top-1 agreement of a (quantized) model.
#include <boost/program_options.hpp>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "qshard/backend/backend.hpp"
#include "qshard/core/cli.hpp"
#include "qshard/core/error.hpp"
#include "qshard/core/signal_messages.hpp"
#include "qshard/eval/eval_job.hpp"
#include "qshard/io/hdf5.hpp"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  qshard::EvalOptions o;
  po::options_description d(
      "qshard-eval: perplexity of a model; KL divergence and top-1 agreement against a reference\n"
      "(options may be written with - or _: --seq-len or --seq_len)\n\nOptions");
  d.add_options()("help,h", "print this help")(
      "model", po::value(&o.model),
      "model to evaluate: Hugging Face directory or synthetic:NAME (also the reference of "
      "--checkpoint and --rtn-bits when no --reference is given)")(
      "reference", po::value(&o.reference),
      "original model to compare with (KL divergence, top-1 agreement)")(
      "checkpoint", po::value(&o.checkpoint), "qshard HDF5 checkpoint to evaluate")(
      "tokens", po::value(&o.tokens), "evaluation tokens: FILE.i32 or FILE.h5[:DATASET]")(
      "seq_len", po::value(&o.seq_len), "tokens per row of the token file")(
      "window", po::value(&o.window)->default_value(-1),
      "non-overlapping windows of this length (-1: whole rows)")(
      "max_rows", po::value(&o.max_rows)->default_value(-1), "evaluate only the first rows")(
      "rtn_bits", po::value(&o.rtn_bits)->default_value(0),
      "evaluate --model quantized in memory with RTN at these bits")(
      "rtn_group_size", po::value(&o.rtn_group_size)->default_value(-1),
      "group size of --rtn-bits (-1: one group per row)")("json", po::bool_switch(&o.json),
                                                          "print one JSON line")(
      "logits_out", po::value(&o.logits_out)->value_name("FILE.f32"),
      "write the evaluated model's logits as raw little-endian float32 [rows * positions, vocab]: "
      "every position of each evaluated row (or window), in order")(
      "allow_extra_tensors", po::bool_switch(&o.allow_extra_tensors),
      "ignore tensors of a model directory that its config.json does not account for")(
      "backend", po::value(&o.backend)->default_value(o.backend),
      "where the decoder layers run: cpu (the reference figures), cuda or auto (GPU 0 when "
      "present)");
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
    qshard::h5::silence_library_errors();
    qshard::install_signal_messages("qshard-eval: ", "");  // SIGBUS names a truncated model file
    std::unique_ptr<qshard::Backend> backend;
    qshard::LayerRunner runner;
    if (o.backend != "cpu") {
      backend = qshard::make_backend(o.backend, 0);
      runner = [&backend](const qshard::ModelConfig& c, const qshard::LayerWeights& w,
                          const qshard::RotaryTable& rope, const qshard::MatrixF& hidden,
                          std::int64_t seq_len) {
        return backend->forward_layer(c, w, rope, hidden, seq_len);
      };
    }
    const qshard::EvalReport report = qshard::run_eval(o, runner);
    qshard::print_report(report, o.json, std::cout);
    // A non-finite result (NaN/Inf weights or scales) is a failure, not a figure.
    if (!std::isfinite(report.evaluated.perplexity)) {
      std::cerr << "qshard-eval: error: the perplexity is not finite ("
                << report.evaluated.perplexity << "): the model's weights or scales hold NaN/Inf\n";
      return 1;
    }
    return 0;
  } catch (const po::error& e) {
    std::cerr << "qshard-eval: error: " << e.what() << " (see --help)\n";
  } catch (const std::exception& e) {  // std::bad_alloc too: one line
    std::cerr << "qshard-eval: error: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "qshard-eval: error: unknown exception\n";
  }
  return 1;
}
