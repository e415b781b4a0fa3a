// Checkpoint integrity (format 2): a payload value rewritten through the HDF5 API (its Fletcher32
// checksum recomputed, so HDF5 reads it happily) is refused by the module hash, naming the module;
// an edited config or module hash by the file hash; @layers must match the layer groups; format 1
// files are read with one warning. Writing: a full disk while copying a layer is reported with the
// OS reason instead of crashing.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iostream>

#include "export_test_support.hpp"
#include "qshard/io/checkpoint.hpp"
#include "qshard/io/checkpoint_hash.hpp"
#include "qshard/io/hdf5.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;
using test::expect_error_with;

// Adds `delta` to element `index` of a dataset through the HDF5 API: the chunk is rewritten with
// a valid Fletcher32 checksum, so only the content hash can tell.
template <typename T>
void rewrite_element(const fs::path& file, const std::string& dataset, std::size_t index, T delta) {
  const h5::File f = h5::File::open_write(file);
  std::vector<T> values = f.root().read<T>(dataset);
  ASSERT_LT(index, values.size());
  values[index] = static_cast<T>(values[index] + delta);
  const h5::Handle d(H5Dopen2(f.root().id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  const hid_t type = sizeof(T) == 2 ? H5T_NATIVE_UINT16 : H5T_NATIVE_INT32;
  ASSERT_GE(H5Dwrite(d.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
}

void set_int_attr(const fs::path& file, const std::string& group, const std::string& name,
                  std::int64_t value) {
  const h5::File f = h5::File::open_write(file);
  (group.empty() ? f.root() : f.root().open_group(group)).set_attr(name, value);
}

struct Fixture {
  Fixture() {
    h5::silence_library_errors();
    test::CheckpointSpec spec;
    spec.float_modules = {Linear::Down};  // a module kept in floating point is hashed too
    test::write_random_checkpoint(path, spec);
  }
  test::TempDir dir;
  fs::path path = dir / "q.h5";
};

TEST(CheckpointIntegrity, WrittenFilesCarryTheirHashesAndVerify) {
  const Fixture f;
  const Checkpoint checkpoint(f.path);
  EXPECT_EQ(checkpoint.format_version(), 2);
  ASSERT_TRUE(checkpoint.content_hash().has_value());
  const CheckpointVerification v = verify_checkpoint(f.path);
  EXPECT_EQ(v.modules, 2 * 7);
  EXPECT_EQ(v.hash, *checkpoint.content_hash());
  EXPECT_EQ(hash_quantized_tensors(f.path), v.hash);
  const h5::Group q = checkpoint.file().root().open_group("layers/00001/v_proj");
  EXPECT_EQ(stored_hash(q), checkpoint.layer(1).module(Linear::V).content_hash);
}

// Each payload dataset of a quantized module, and the weight of one kept in floating point.
TEST(CheckpointIntegrity, RewrittenPayloadValueIsRefusedNamingTheModule) {
  for (const std::string dataset : {"qweight", "qzeros", "scales", "g_idx"}) {
    const Fixture f;
    const std::string where = "layers/00001/v_proj/" + dataset;
    if (dataset == "scales")
      rewrite_element<std::uint16_t>(f.path, where, 5, 1);  // a nearby finite fp16 value
    else if (dataset == "g_idx")
      rewrite_element<std::int32_t>(f.path, where, 0, 1);  // group 1 instead of 0: in range
    else
      rewrite_element<std::int32_t>(f.path, where, 3, 1);
    // HDF5's checksum is valid: the dataset reads.
    EXPECT_NO_THROW((void)h5::File::open_read(f.path).root().info(where)) << dataset;
    const Checkpoint checkpoint(f.path);  // the stored hashes still agree with each other
    EXPECT_NO_THROW((void)checkpoint.layer(0)) << dataset;
    expect_error_with([&] { (void)checkpoint.layer(1); },
                      {"/layers/00001/v_proj", "content hash mismatch", "q.h5"});
    expect_error_with([&] { (void)verify_checkpoint(f.path); },
                      {"/layers/00001/v_proj", "content hash mismatch"});
    expect_error_with([&] { (void)hash_quantized_tensors(f.path); }, {"/layers/00001/v_proj"});
  }
  const Fixture f;
  {
    const h5::File file = h5::File::open_write(f.path);
    std::vector<float> values = file.root().read<float>("layers/00000/down_proj/weight");
    values[7] += 0.5f;
    const h5::Handle d(H5Dopen2(file.root().id(), "layers/00000/down_proj/weight", H5P_DEFAULT),
                       H5Dclose);
    ASSERT_GE(H5Dwrite(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  }
  expect_error_with([&] { (void)Checkpoint(f.path).layer(0); },
                    {"/layers/00000/down_proj", "content hash mismatch"});
}

TEST(CheckpointIntegrity, EditedConfigOrModuleHashIsRefusedByTheFileHash) {
  {
    const Fixture f;
    {
      const h5::File file = h5::File::open_write(f.path);
      nlohmann::json config = nlohmann::json::parse(file.root().attr_string("model_config"));
      config["rms_norm_eps"] = 1e-3;
      file.root().set_attr("model_config", config.dump());
    }
    expect_error_with([&] { Checkpoint{f.path}; }, {"q.h5", "file content hash mismatch"});
  }
  {
    const Fixture f;
    {
      const h5::File file = h5::File::open_write(f.path);
      file.root()
          .open_group("layers/00000/o_proj")
          .set_attr(kContentHashAttr, std::string("0123456789abcdef"));
    }
    expect_error_with([&] { Checkpoint{f.path}; }, {"file content hash mismatch"});
  }
}

TEST(CheckpointIntegrity, LayersAttributeMustMatchTheLayerGroups) {
  for (const std::int64_t layers : {1, 3, 0, -1}) {
    const Fixture f;
    set_int_attr(f.path, "", "layers", layers);
    const std::string expected = layers == 1   ? "/layers/00001 disagrees with @layers = 1"
                                 : layers == 3 ? "@layers = 3 but /layers holds 2 layer groups"
                                 : layers == 0 ? "/layers/00000 disagrees with @layers = 0"
                                               : "@layers = -1 is negative";
    expect_error_with([&] { Checkpoint{f.path}; }, {"q.h5", expected});
    expect_error_with([&] { (void)verify_checkpoint(f.path); }, {expected});
    expect_error_with([&] { (void)hash_quantized_tensors(f.path); }, {expected});
  }
  // A layer group that is not a layer's.
  const Fixture f;
  {
    const h5::File file = h5::File::open_write(f.path);
    file.root().open_group("layers").create_group("extra");
  }
  expect_error_with([&] { Checkpoint{f.path}; }, {"/layers/extra disagrees with @layers = 2"});
}

// A format 1 checkpoint: what an older qshard wrote (no hashes, format_version 1).
void downgrade_to_format_1(const fs::path& path) {
  const h5::File file = h5::File::open_write(path);
  const h5::Group root = file.root();
  root.set_attr("format_version", std::int64_t{1});
  ASSERT_GE(H5Adelete(root.id(), kContentHashAttr), 0);
  for (const std::string& layer : root.open_group("layers").children())
    for (const Linear linear : kAllLinears) {
      const h5::Group g =
          root.open_group("layers/" + layer + "/" + std::string(linear_name(linear)));
      ASSERT_GE(H5Adelete(g.id(), kContentHashAttr), 0);
    }
}

TEST(CheckpointIntegrity, Format1IsReadWithOneWarning) {
  const Fixture f;
  const std::uint64_t hash = *Checkpoint(f.path).content_hash();
  downgrade_to_format_1(f.path);
  testing::internal::CaptureStderr();
  {
    const Checkpoint checkpoint(f.path);
    EXPECT_EQ(checkpoint.format_version(), 1);
    EXPECT_FALSE(checkpoint.content_hash().has_value());
    EXPECT_NO_THROW((void)checkpoint.layer(1));
    const Checkpoint again(f.path);  // the warning comes once
  }
  const std::string warning = testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("warning: "), std::string::npos) << warning;
  EXPECT_NE(warning.find("q.h5\" is a format-1 checkpoint"), std::string::npos) << warning;
  EXPECT_EQ(std::count(warning.begin(), warning.end(), '\n'), 1) << warning;
  // The hash of format 1 data is computed the same way: the same content, the same hash.
  const CheckpointVerification v = verify_checkpoint(f.path);
  EXPECT_EQ(v.format_version, 1);
  EXPECT_EQ(v.hash, hash);
  EXPECT_EQ(hash_quantized_tensors(f.path), hash);

  set_int_attr(f.path, "", "format_version", 3);
  expect_error_with([&] { Checkpoint{f.path}; }, {"unsupported format_version 3"});
}

// In a child process, makes writes under `disk` fail: a 64 KiB tmpfs mounted there in a private
// mount namespace (a real full disk: ENOSPC) where this process may (root), else a file size
// limit of 64 KiB (RLIMIT_FSIZE with SIGXFSZ ignored: EFBIG). Returns the OS reason to expect.
std::string make_writes_fail(const fs::path& disk) {
  if (unshare(CLONE_NEWNS) == 0 &&
      mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
      mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=64k") == 0)
    return "No space left on device";
  std::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit{64 << 10, 64 << 10};
  setrlimit(RLIMIT_FSIZE, &limit);
  return "File too large";
}

// Copying a layer into a checkpoint whose disk is full: HDF5's failure, with the OS reason,
// becomes an exception naming both files. Before, H5Ocopy crashed inside HDF5 (SIGSEGV in
// H5O_copy_header_map).
TEST(CheckpointIntegrity, FailedLayerCopyIsReportedWithTheOsReason) {
  h5::silence_library_errors();
  const test::TempDir dir;
  test::CheckpointSpec spec;
  spec.intermediate = 1024;  // a layer file of about 200 KB
  test::write_random_checkpoint(dir / "q.h5", spec);
  // The layer file again, as the job leaves it in OUT.parts.
  const Checkpoint written(dir / "q.h5");
  write_layer_file(dir / "layer-0.h5", written.model_config(), written.layer(0), DType::F32);
  ASSERT_GT(fs::file_size(dir / "layer-0.h5"), 128u << 10);
  const fs::path disk = dir / "disk", report = dir / "report.txt";
  fs::create_directories(disk);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string outcome = make_writes_fail(disk) + "\n";
    try {
      CheckpointWriter writer(disk / "out.h5");
      writer.add_layer_file(dir / "layer-0.h5", 0);
      outcome += "no error";
    } catch (const std::exception& e) {
      outcome += e.what();
    }
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(disk, ec))
      outcome += "\nleft: " + entry.path().filename().string();
    std::ofstream(report) << outcome;
    _exit(0);  // HDF5's clean-up at exit is the apps' (integration test)
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the writer crashed (signal " << WTERMSIG(status) << ")";
  std::ifstream in(report);
  std::string reason;
  std::getline(in, reason);
  const std::string message((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::cout << "writes fail with: " << reason << '\n';
  EXPECT_NE(message.find("cannot copy /layers/00000 from \"" + (dir / "layer-0.h5").string()),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("out.h5.tmp"), std::string::npos) << message;
  EXPECT_NE(message.find(reason), std::string::npos) << message;
  EXPECT_EQ(message.find("left: "), std::string::npos) << message;  // the writer removed its .tmp
}

}  // namespace
}  // namespace qshard
