#pragma once
// Temporary folders and files for the sweep unit tests.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace qshard::test {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace qshard::test
