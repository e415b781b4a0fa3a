// qshard-quantize with its ranks on two "hosts": network namespaces joined by a bridge
// (scripts/netns-hosts.sh, set up by the CTest fixture), Open MPI starting its daemons in them and
// the ranks talking over TCP only. Checkpoints equal the one-host run's; a fault that only one
// host sees ends the job on both, named.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qshard/io/checkpoint.hpp"
#include "shell.hpp"

namespace qshard {
namespace {
namespace fs = std::filesystem;
using test::Ran;
using test::Scratch;
using test::sh;

const fs::path kApps = QSHARD_APPS_DIR;
const fs::path kShared = QSHARD_SHARED_DIR;
const fs::path kState = QSHARD_NETNS_STATE;

class MultiHostMpi : public ::testing::Test {
 protected:
  void SetUp() override {
    if (fs::exists(kState / "unavailable"))
      GTEST_SKIP() << "no network-namespace hosts: " << test::read_file(kState / "unavailable");
    ASSERT_TRUE(fs::exists(kState / "mpirun-args"))
        << "the fixture cluster.netns_up did not create the hosts (" << kState << ")";
    if (!fs::exists(kShared / "models/stories260k/model.safetensors"))
      GTEST_SKIP() << "stories260k not found under " << kShared
                   << " (../shared beside the checkout)";
  }

  // mpirun over the namespace hosts: `ranks` ranks dealt round-robin over the two hosts.
  static std::string across_hosts(int ranks) {
    std::string args = test::read_file(kState / "mpirun-args");
    args.erase(args.find_last_not_of(" \n") + 1);
    return QSHARD_MPIEXEC " " + args + " -np " + std::to_string(ranks) + " --map-by node ";
  }

  static std::string quantize(const std::string& model, const fs::path& out) {
    const std::string data = (kShared / "data/stories260k").string();
    return (kApps / "qshard-quantize").string() + " --model " + model + " --calib " + data +
           "/calib_128x256.i32 --samples 128 --seq_len 256 --backend cpu --quiet --out " +
           out.string();
  }
};

std::int64_t bridge_bytes(int host) {
  const fs::path stats = "/sys/class/net/qshard-v" + std::to_string(host) + "/statistics";
  std::int64_t rx = 0, tx = 0;
  std::ifstream(stats / "rx_bytes") >> rx;
  std::ifstream(stats / "tx_bytes") >> tx;
  return rx + tx;
}

// 2 and 4 ranks over 2 hosts give the checkpoint of 2 ranks on one host (the job does not
// depend on the rank count), and the Hessians cross the network: the bytes through host 1's
// link are at least what its ranks must send of the exact all-reduce.
TEST_F(MultiHostMpi, RanksOnTwoHostsGiveTheOneHostCheckpoint) {
  Scratch dir("qshard-multihost");
  const std::string model = (kShared / "models/stories260k").string();
  const Ran where = sh(across_hosts(4) + "hostname");
  ASSERT_EQ(where.code, 0) << where.output;
  std::vector<int> per_host(2, 0);
  for (std::size_t at = 0; (at = where.output.find("qshard-h", at)) != std::string::npos; ++at)
    ++per_host.at(static_cast<std::size_t>(where.output[at + 8] - '0'));
  EXPECT_EQ(per_host, (std::vector<int>{2, 2})) << where.output;

  const Ran one_host =
      sh(QSHARD_MPIEXEC " -np 2 --oversubscribe " + quantize(model, dir.path() / "one-host.h5"));
  ASSERT_EQ(one_host.code, 0) << one_host.output;
  const std::uint64_t expected = hash_quantized_tensors(dir.path() / "one-host.h5");
  for (const int ranks : {2, 4}) {
    const std::int64_t before = bridge_bytes(1);
    const fs::path out = dir.path() / ("hosts-" + std::to_string(ranks) + ".h5");
    const Ran r = sh(across_hosts(ranks) + quantize(model, out), 300);
    ASSERT_EQ(r.code, 0) << ranks << " ranks:\n" << r.output;
    EXPECT_EQ(hash_quantized_tensors(out), expected) << ranks << " ranks";
    // stories260k: hidden 64, intermediate 172, 5 layers; per layer four Hessians of two int64
    // limbs per element (64^2 three times, 172^2 once). Each host sends at least half of them.
    const std::int64_t hessian_bytes = 5 * 16 * (3 * 64 * 64 + 172 * 172);
    const std::int64_t moved = bridge_bytes(1) - before;
    std::cout << ranks << " ranks on 2 hosts: " << moved << " bytes through host 1's link ("
              << hessian_bytes << " bytes of Hessian limbs per rank)\n";
    EXPECT_GE(moved, hessian_bytes / 2);
  }
}

// Copies stories260k into `dir`/model, and writes a corrupted copy of its safetensors file:
// `truncate` bytes kept, or (truncate = 0) a NaN in layer 3's down_proj.
fs::path corrupted_copy(const Scratch& dir, std::uintmax_t truncate) {
  fs::copy(kShared / "models/stories260k", dir.path() / "model", fs::copy_options::recursive);
  const fs::path bad = dir.path() / "bad.safetensors";
  fs::copy_file(dir.path() / "model/model.safetensors", bad);
  if (truncate > 0) {
    fs::resize_file(bad, truncate);
    return bad;
  }
  std::fstream file(bad, std::ios::in | std::ios::out | std::ios::binary);
  std::uint64_t header_size = 0;
  file.read(reinterpret_cast<char*>(&header_size), sizeof header_size);
  std::string header(header_size, '\0');
  file.read(header.data(), static_cast<std::streamsize>(header_size));
  const auto tensor = nlohmann::json::parse(header).at("model.layers.3.mlp.down_proj.weight");
  EXPECT_EQ(tensor.at("dtype"), "F32");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  file.seekp(static_cast<std::streamoff>(8 + header_size +
                                         tensor.at("data_offsets")[0].get<std::uint64_t>()));
  file.write(reinterpret_cast<const char*>(&nan), sizeof nan);
  return bad;
}

// A model file that only host 1 sees truncated: its rank fails while opening the model, and the
// job ends on both hosts, the error naming the rank, the file and what is wrong.
TEST_F(MultiHostMpi, AFileBadOnOneHostEndsTheJobOnBothNamed) {
  Scratch dir("qshard-multihost-fault");
  const fs::path bad = corrupted_copy(dir, 300000);
  const std::string bind =
      "QSHARD_NETNS_BIND_H1=" + bad.string() + ":" + dir / "model/model.safetensors";
  const auto start = std::chrono::steady_clock::now();
  const Ran r =
      sh(bind + " " + across_hosts(2) + quantize(dir / "model", dir.path() / "out.h5"), 120);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(r.code, 124) << "the job hung:\n" << r.output;
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("error: rank 1: " + dir / "model/model.safetensors"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("the file is truncated"), std::string::npos) << r.output;
  EXPECT_LT(seconds, 60.0);
  EXPECT_FALSE(fs::exists(dir.path() / "out.h5"));
  EXPECT_FALSE(fs::exists(dir.path() / "out.h5.parts")) << "the job failed before any layer";
}

// A NaN that only host 1 reads, in layer 3: its rank fails in the middle of the job and aborts
// it on both hosts; the layers finished before stay for --resume, no checkpoint is written.
TEST_F(MultiHostMpi, ANanReadOnOneHostMidJobAbortsBothHostsNamed) {
  Scratch dir("qshard-multihost-nan");
  const fs::path bad = corrupted_copy(dir, 0);
  const std::string bind =
      "QSHARD_NETNS_BIND_H1=" + bad.string() + ":" + dir / "model/model.safetensors";
  const Ran r =
      sh(bind + " " + across_hosts(2) + quantize(dir / "model", dir.path() / "out.h5"), 300);
  EXPECT_NE(r.code, 124) << "the job hung:\n" << r.output;
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("error (rank 1): layer 3: down_proj"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("non-finite value (nan) at row 0, column 0"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir.path() / "out.h5"));
  EXPECT_TRUE(fs::exists(dir.path() / "out.h5.parts/layer-00002.h5")) << r.output;
}

}  // namespace
}  // namespace qshard
