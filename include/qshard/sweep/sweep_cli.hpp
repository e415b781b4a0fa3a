#pragma once
// The command line of qshard-sweep (--list, --count, --index N, --report), for its thin main.
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "qshard/core/app.hpp"

namespace qshard {

// `args` without argv[0]; `self` is the qshard-sweep executable (qshard-quantize is looked for
// beside it). Runs in the apps' harness `app` (the main passes hdf5_app("qshard-sweep")): returns
// the exit code; an error is printed to `err` as one line.
int run_sweep_cli(const std::vector<std::string>& args, const std::filesystem::path& self,
                  std::ostream& out, std::ostream& err,
                  const App& app = App{"qshard-sweep", {}, {}});

}  // namespace qshard
