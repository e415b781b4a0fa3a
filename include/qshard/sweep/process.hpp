#pragma once
// Child processes of qshard-sweep (the launcher + qshard-quantize, gnuplot): argv vectors, no
// shell.
#include <string>
#include <vector>

namespace qshard {

// Splits a launcher command ("mpirun -np 2 --oversubscribe") at whitespace (no quoting).
std::vector<std::string> split_command(const std::string& command);

// Runs argv[0] (searched on PATH) with the arguments, inheriting stdin/stdout/stderr and the
// environment, and waits. Returns the exit status (128 + signal when killed); throws
// qshard::Error when it cannot be started.
int run_process(const std::vector<std::string>& argv);

// "a b 'c d'": argv quoted for a shell, for logs and the reproduction commands.
std::string shell_quote(const std::vector<std::string>& argv);

}  // namespace qshard
