// qshard-eval: perplexity, KL divergence and top-1 agreement of a (quantized) model.
#include <cblas.h>

#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "qshard/backend/backend.hpp"
#include "qshard/core/error.hpp"
#include "qshard/core/signal_messages.hpp"
#include "qshard/eval/eval_cli.hpp"
#include "qshard/io/hdf5_app.hpp"
#include "qshard/pipeline/backend_factory.hpp"

int main(int argc, char** argv) {
  return qshard::run_app(
      qshard::hdf5_app("qshard-eval"),
      [&] {
        const qshard::ParsedEvalOptions parsed =
            qshard::parse_eval_options({argv + 1, argv + argc});
        if (!parsed.options) {
          std::cout << parsed.help;
          return 0;
        }
        const qshard::EvalOptions& o = *parsed.options;
        qshard::install_signal_messages("qshard-eval: ",
                                        "");  // SIGBUS names a truncated model file
        if (o.threads > 0) openblas_set_num_threads(o.threads);
        // The CPU backend's layers are the evaluation's own forward: only another backend runs
        // them.
        const qshard::EvaluationBackend backend = qshard::make_evaluation_backend(o.backend);
        const qshard::EvalReport report = qshard::run_eval(o, backend.runner);
        qshard::print_report(report, o.json, std::cout);
        // A non-finite result (NaN/Inf weights or scales) is a failure, not a figure.
        qshard::require(std::isfinite(report.evaluated.perplexity),
                        "the perplexity is not finite (", report.evaluated.perplexity,
                        "): the model's weights or scales hold NaN/Inf");
        return 0;
      },
      std::cerr);
}
