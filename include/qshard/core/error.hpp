#pragma once
// Errors are exceptions carrying their context (file, tensor, key) in the message.
#include <sstream>
#include <stdexcept>
#include <string>

namespace qshard {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Concatenates any streamable values into one string: str("tensor ", name, " has ", n, " rows").
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

// Throws qshard::Error with the concatenated message when `condition` is false.
template <typename... Args>
void require(bool condition, const Args&... message) {
  if (!condition) throw Error(str(message...));
}

}  // namespace qshard
