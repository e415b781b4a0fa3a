#pragma once
// The command line of qshard-sweep (--list, --count, --index N, --report), for its thin main.
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

namespace qshard {

// `args` without argv[0]; `self` is the qshard-sweep executable (qshard-quantize is looked for
// beside it). Returns the exit code; errors are printed to `err`.
int run_sweep_cli(const std::vector<std::string>& args, const std::filesystem::path& self,
                  std::ostream& out, std::ostream& err);

}  // namespace qshard
