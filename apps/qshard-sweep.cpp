// qshard-sweep: grids of quantization settings (--list, --index N for job arrays, --report).
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "qshard/io/hdf5_app.hpp"
#include "qshard/sweep/sweep_cli.hpp"

int main(int argc, char** argv) {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) self = std::filesystem::absolute(argv[0]);
  const std::vector<std::string> args(argv + 1, argv + argc);
  return qshard::run_sweep_cli(args, self, std::cout, std::cerr, qshard::hdf5_app("qshard-sweep"));
}
