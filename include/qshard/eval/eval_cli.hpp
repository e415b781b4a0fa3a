#pragma once
// The command line of qshard-eval: every EvalOptions field as an option, with its help text.
#include <string>
#include <vector>

#include "qshard/core/cli.hpp"
#include "qshard/eval/eval_job.hpp"

namespace qshard {

using ParsedEvalOptions = ParsedCommandLine<EvalOptions>;

// `args` without argv[0]; unknown options, stray words and bad values throw qshard::Error.
ParsedEvalOptions parse_eval_options(const std::vector<std::string>& args);

}  // namespace qshard
