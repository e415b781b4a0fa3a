#include "support.hpp"

#include <array>
#include <cstdio>
#include <random>

#include "qshard/core/error.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard::test {
namespace fs = std::filesystem;

RunResult run(const std::string& command, int timeout_seconds) {
  const std::string full = "timeout " + std::to_string(timeout_seconds) + " " + command + " 2>&1";
  RunResult result;
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) result.output += buffer.data();
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string app(const std::string& name) { return std::string(QSHARD_APPS_DIR) + "/" + name; }

std::string quantize_command(int ranks, const std::string& args) {
  return std::string(QSHARD_MPIEXEC) + " -np " + std::to_string(ranks) + " --oversubscribe " +
         QSHARD_APPS_DIR + "/qshard-quantize " + args;
}

fs::path shared_dir() { return fs::path(QSHARD_SHARED_DIR); }
bool shared_available() {
  return fs::exists(shared_dir() / "models/stories260k/model.safetensors");
}

TempDir::TempDir(const std::string& name) {
  std::random_device rd;
  path_ = fs::temp_directory_path() / (name + "-" + std::to_string(rd()));
  fs::create_directories(path_);
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {
// The dataset's elements as stored (its own type, no conversion).
std::vector<unsigned char> raw_bytes(const h5::Group& g, const std::string& name) {
  const h5::Handle dataset(H5Dopen2(g.id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  const h5::Handle type(H5Dget_type(dataset.get()), H5Tclose);
  const h5::Handle space(H5Dget_space(dataset.get()), H5Sclose);
  const auto points = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.get()));
  std::vector<unsigned char> bytes(points * H5Tget_size(type.get()));
  if (!bytes.empty())
    H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
  return bytes;
}

std::string compare_group(const h5::Group& a, const h5::Group& b) {
  const auto children = a.children();
  if (children != b.children()) return a.path() + ": different children";
  for (const std::string& name : children) {
    if (a.is_group(name)) {
      if (auto d = compare_group(a.open_group(name), b.open_group(name)); !d.empty()) return d;
      continue;
    }
    const h5::DatasetInfo ia = a.info(name), ib = b.info(name);
    if (ia.shape != ib.shape || ia.type_size != ib.type_size)
      return a.path() + "/" + name + ": shape/type";
    const auto va = raw_bytes(a, name), vb = raw_bytes(b, name);
    if (va != vb) return a.path() + "/" + name + ": bytes differ";
  }
  return "";
}
}  // namespace

std::string compare_quantized_tensors(const fs::path& a, const fs::path& b) {
  const h5::File fa = h5::File::open_read(a), fb = h5::File::open_read(b);
  return compare_group(fa.root().open_group("layers"), fb.root().open_group("layers"));
}

}  // namespace qshard::test
