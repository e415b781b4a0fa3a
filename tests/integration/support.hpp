#pragma once
// Helpers of the end-to-end tests: running apps under mpirun, temporary folders, checkpoints.
#include <filesystem>
#include <string>

namespace qshard::test {

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` through the shell with a time limit; never hangs the test.
RunResult run(const std::string& command, int timeout_seconds = 600);
// The path of app `name` in the build tree.
std::string app(const std::string& name);
// "mpirun -np N --oversubscribe APPS/qshard-quantize ARGS" (N = 1 runs without mpirun too).
std::string quantize_command(int ranks, const std::string& args);
std::filesystem::path shared_dir();
bool shared_available();
// A fresh empty directory under the system temporary directory, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& name);
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& file) const { return (path_ / file).string(); }

 private:
  std::filesystem::path path_;
};

// Every dataset of the checkpoint's /layers group, byte for byte: equal or the first difference.
std::string compare_quantized_tensors(const std::filesystem::path& a,
                                      const std::filesystem::path& b);

}  // namespace qshard::test
