// Checkpoint integrity and full disks end to end: a payload value rewritten with a valid HDF5
// checksum, or an @layers that disagrees with the groups, is refused by qshard-eval, qshard-export
// and qshard-inspect --verify naming the module; a disk too small for the checkpoint (a real
// tmpfs in a private mount namespace) gives the reason, leaves nothing that looks complete, and a
// later --resume completes.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fstream>
#include <regex>

#include "qshard/io/hdf5.hpp"
#include "support.hpp"

namespace qshard::test {
namespace {
namespace fs = std::filesystem;

const std::string kTiny =
    "--model synthetic:tiny --samples 4 --seq_len 16 --batch_samples 2 --backend cpu --quiet ";

// Adds 1 to element 3 of an int32 dataset through the HDF5 API (checksum recomputed).
void rewrite_element(const fs::path& file, const char* dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  std::vector<std::int32_t> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  values[3] += 1;
  EXPECT_GE(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
}

// What an older qshard wrote: @format_version 1 and no content hashes.
void downgrade_to_format_1(const fs::path& path) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const std::int64_t one = 1;
  const hid_t version = H5Aopen(f, "format_version", H5P_DEFAULT);
  H5Awrite(version, H5T_NATIVE_INT64, &one);
  H5Aclose(version);
  H5Adelete(f, "content_hash");
  for (const char* layer : {"00000", "00001", "00002", "00003"})
    for (const char* module :
         {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
      H5Adelete_by_name(f, (std::string("layers/") + layer + "/" + module).c_str(), "content_hash",
                        H5P_DEFAULT);
  H5Fclose(f);
}

void write_tokens(const fs::path& path) {
  std::vector<std::int32_t> ids(4 * 16);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>((i * 37) % 1000);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()),
             static_cast<std::streamsize>(ids.size() * sizeof(std::int32_t)));
}

TEST(CheckpointIntegrity, CorruptedCheckpointIsRefusedByEveryReaderNamingTheModule) {
  TempDir dir("qshard-integrity");
  const std::string good = dir / "good.h5";
  const RunResult quantized = run(quantize_command(1, kTiny + "--bits 4 --out " + good));
  ASSERT_EQ(quantized.exit_code, 0) << quantized.output;
  write_tokens(dir / "ids.i32");

  const RunResult verified = run(app("qshard-inspect") + " --checkpoint " + good + " --verify");
  ASSERT_EQ(verified.exit_code, 0) << verified.output;
  const RunResult hash = run(app("qshard-inspect") + " --checkpoint " + good + " --hash");
  ASSERT_EQ(hash.exit_code, 0) << hash.output;
  EXPECT_EQ(verified.output, "verified: 28 modules, hash " + hash.output);

  const auto refused = [&](const std::string& file, const std::string& needle) {
    const std::vector<std::string> commands = {
        app("qshard-inspect") + " --checkpoint " + file + " --verify",
        app("qshard-inspect") + " --checkpoint " + file,
        app("qshard-eval") + " --checkpoint " + file + " --tokens " + dir / "ids.i32" +
            " --seq_len 16",
        app("qshard-export") + " --checkpoint " + file + " --out " + dir / "exported"};
    for (const std::string& command : commands) {
      const RunResult r = run(command);
      EXPECT_EQ(r.exit_code, 1) << command << "\n" << r.output;
      EXPECT_NE(r.output.find(needle), std::string::npos) << command << "\n" << r.output;
      EXPECT_EQ(r.output.find("perplexity"), std::string::npos) << r.output;
    }
    EXPECT_FALSE(fs::exists(dir / "exported"));
    EXPECT_FALSE(fs::exists(dir / "exported.tmp"));
  };
  // A packed code changed with a valid Fletcher32 checksum: only the module hash sees it.
  const std::string corrupted = dir / "corrupted.h5";
  fs::copy_file(good, corrupted);
  rewrite_element(corrupted, "layers/00001/v_proj/qweight");
  refused(corrupted, "module /layers/00001/v_proj: content hash mismatch");
  // @layers disagreeing with the layer groups (an export would be unloadable).
  const std::string cut = dir / "cut.h5";
  fs::copy_file(good, cut);
  {
    const h5::File file = h5::File::open_write(cut);
    file.root().set_attr("layers", std::int64_t{3});
  }
  refused(cut, "/layers/00003 disagrees with @layers = 3");

  // Format 1 (no hashes): read, with one warning line.
  const std::string old = dir / "old.h5";
  fs::copy_file(good, old);
  downgrade_to_format_1(old);
  const RunResult eval = run(app("qshard-eval") + " --checkpoint " + old + " --tokens " +
                             dir / "ids.i32" + " --seq_len 16");
  EXPECT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(eval.output.find("qshard: warning: \"" + old + "\" is a format-1 checkpoint"),
            std::string::npos)
      << eval.output;
  EXPECT_EQ(run(app("qshard-inspect") + " --checkpoint " + old + " --hash").output, hash.output);
}

// Runs `script` as root in a private mount namespace (its tmpfs mounts vanish with it); "" when
// this machine does not allow that, else the output.
std::string in_private_namespace(const std::string& script) {
  return run("unshare -m --propagation private sh -c '" + script + "'").output;
}

TEST(CheckpointIntegrity, FullDiskIsReportedWithTheReasonAndResumeCompletes) {
  TempDir dir("qshard-full-disk");
  const std::string disk = dir / "disk";
  fs::create_directories(disk);
  const RunResult probe =
      run("unshare -m --propagation private sh -c 'mount -t tmpfs -o size=64k "
          "tmpfs " +
          disk + " && echo mounted'");
  if (probe.output.find("mounted") == std::string::npos)
    GTEST_SKIP() << "cannot mount a tmpfs in a private mount namespace here (needs root or user "
                    "namespaces): "
                 << probe.output;
  const std::string mount = "mount -t tmpfs -o size=";
  const std::string out = disk + "/t.h5", parts = dir / "parts";
  const std::string job =
      quantize_command(1, kTiny + "--bits 4 --out " + out + " --parts_dir " + parts);
  // The checkpoint is about 1.5 MB: the layer files (on the real disk) fit, the checkpoint does
  // not fit a 600 KB disk. The job says so before copying anything, with the numbers.
  std::string output = in_private_namespace(mount + "600k tmpfs " + disk + " && " + job +
                                            "; echo rc=$?; ls -A " + disk);
  EXPECT_NE(output.find("not enough space for the checkpoint at \"" + out + ".tmp\""),
            std::string::npos)
      << output;
  EXPECT_TRUE(std::regex_search(output, std::regex("[0-9]+ bytes needed, [0-9]+ free"))) << output;
  EXPECT_NE(output.find("rc=1\n"), std::string::npos) << output;
  EXPECT_EQ(output.substr(output.find("rc=1\n") + 5), "") << "left on the disk: " << output;
  EXPECT_TRUE(fs::exists(fs::path(parts) / "layer-00003.h5"));

  // The layer files themselves on a full disk: HDF5's failure with the OS reason, no crash, and
  // nothing but OUT.parts (here the disk holds both).
  output = in_private_namespace(mount + "200k tmpfs " + disk + " && " +
                                quantize_command(1, kTiny + "--bits 4 --out " + out) +
                                "; echo rc=$?; ls -A " + disk);
  EXPECT_NE(output.find("No space left on device"), std::string::npos) << output;
  EXPECT_NE(output.find("rc=1\n"), std::string::npos) << output;
  EXPECT_EQ(output.substr(output.find("rc=1\n") + 5), "t.h5.parts\n") << output;

  // Room for the checkpoint once a stale OUT.tmp (a job killed while assembling) is gone:
  // --resume removes it and completes; only the checkpoint is left.
  output =
      in_private_namespace(mount + "2600k tmpfs " + disk + " && head -c 1200000 /dev/zero > " +
                           out + ".tmp && " + job + " --resume; echo rc=$?; ls -A " + disk +
                           " && " + app("qshard-inspect") + " --checkpoint " + out + " --verify");
  EXPECT_NE(output.find("rc=0\nt.h5\nverified: 28 modules"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(parts));
}

}  // namespace
}  // namespace qshard::test
