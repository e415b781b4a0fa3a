#include "qshard/sweep/results.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "qshard/core/error.hpp"

namespace qshard {
namespace {

// Closes the descriptor (and so releases its lock) on every path out.
class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() {
    if (fd_ >= 0) close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

void append_result_line(const std::filesystem::path& results, const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  const std::string name = results.string();
  const Descriptor fd(open(name.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  require(fd.get() >= 0, "cannot open ", name, " for appending: ", std::strerror(errno));
  while (flock(fd.get(), LOCK_EX) != 0) {
    require(errno == EINTR, "cannot lock ", name, ": ", std::strerror(errno));
  }
  ssize_t written = 0;
  do {
    written = write(fd.get(), line.data(), line.size());
  } while (written < 0 && errno == EINTR);
  require(written == static_cast<ssize_t>(line.size()), "cannot append to ", name, ": ",
          written < 0 ? std::strerror(errno) : "short write");
  require(fsync(fd.get()) == 0 || errno == EINVAL, "cannot sync ", name, ": ",
          std::strerror(errno));
}

std::vector<nlohmann::json> read_result_lines(const std::filesystem::path& results) {
  std::ifstream in(results);
  require(in.good(), "cannot read results file '", results.string(), "'");
  std::vector<nlohmann::json> records;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(str(results.string(), ":", number, ": not JSON: ", e.what()));
    }
    require(record.is_object(), results.string(), ":", number, ": not a JSON object");
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace qshard
