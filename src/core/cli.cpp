#include "qshard/core/cli.hpp"

#include <algorithm>
#include <cctype>

#include "qshard/core/error.hpp"

namespace qshard {

void check_option_text(std::string_view text, std::string_view where) {
  for (std::size_t open = text.find('%'); open != std::string_view::npos;
       open = text.find('%', open + 1)) {
    std::size_t end = open + 1;
    while (end < text.size() &&
           (std::islower(static_cast<unsigned char>(text[end])) != 0 || text[end] == '_'))
      ++end;
    if (end > open + 1 && end < text.size() && text[end] == '%') {
      const auto line = 1 + std::count(text.begin(), text.begin() + open, '\n');
      const std::string at = text.find('\n') == std::string_view::npos ? "" : str(", line ", line);
      throw Error(str(where, at, ": '", text.substr(open, end + 1 - open),
                      "' is not allowed in options (Boost.Program_options reserves %word% in its "
                      "messages)"));
    }
  }
}

std::vector<std::string> normalise_option_names(std::vector<std::string> args) {
  for (std::string& a : args) {
    check_option_text(a, str("command-line argument '", a, "'"));
    if (a.rfind("--", 0) != 0) continue;
    const std::size_t end = std::min(a.find('='), a.size());
    std::replace(a.begin() + 2, a.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
  }
  return args;
}

}  // namespace qshard
