#pragma once
// Test helpers for error messages: what a call throws, and whether a text mentions a part.
#include <functional>
#include <string>

#include "qshard/core/error.hpp"

namespace qshard::test {

// The message of the qshard::Error that `f` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace qshard::test
