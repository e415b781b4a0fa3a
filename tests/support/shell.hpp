#pragma once
// Shell commands and scratch folders for the tests that drive scripts and launchers (the sbatch
// scripts, a real local Slurm cluster, mpirun across network namespaces).
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <system_error>

namespace qshard::test {

struct Ran {
  int code = -1;       // exit status; -1 when killed by a signal or not started
  std::string output;  // stdout and stderr together
};

// Runs `command` with bash under a time limit (exit status 124 when it ran out).
inline Ran sh(const std::string& command, int timeout_s = 600) {
  std::string quoted;
  for (const char c : command) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  const std::string full =
      "timeout " + std::to_string(timeout_s) + " bash -c '" + quoted + "' 2>&1";
  Ran ran;
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return ran;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) ran.output += buffer.data();
  const int status = pclose(pipe);
  ran.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return ran;
}

// A fresh folder under the temporary directory, removed with everything in it at the end.
class Scratch {
 public:
  explicit Scratch(const std::string& name) {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace qshard::test
