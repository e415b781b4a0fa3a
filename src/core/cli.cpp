#include "qshard/core/cli.hpp"

#include <algorithm>

namespace qshard {

std::vector<std::string> normalise_option_names(std::vector<std::string> args) {
  for (std::string& a : args) {
    if (a.rfind("--", 0) != 0) continue;
    const std::size_t end = std::min(a.find('='), a.size());
    std::replace(a.begin() + 2, a.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
  }
  return args;
}

}  // namespace qshard
