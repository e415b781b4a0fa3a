// Collectives of MpiCommunicator and the exact Hessian all-reduce, against single-process results.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/pipeline/calibration.hpp"

namespace qshard {
namespace {

TEST(MpiCommunicator, AllReduceSumIsExact) {
  MpiCommunicator comm;
  const int n = comm.size();
  std::vector<std::int64_t> v = {comm.rank() + 1, std::int64_t{1} << 40, -comm.rank()};
  comm.all_reduce_sum(v);
  EXPECT_EQ(v[0], n * (n + 1) / 2);
  EXPECT_EQ(v[1], (std::int64_t{1} << 40) * n);
  EXPECT_EQ(v[2], -n * (n - 1) / 2);
  std::vector<double> m = {static_cast<double>(comm.rank())};
  comm.all_reduce_max(m);
  EXPECT_EQ(m[0], n - 1);
}

TEST(MpiCommunicator, AllGatherConcatenatesInRankOrder) {
  MpiCommunicator comm;
  // Rank r contributes r bytes of value r (rank 0 contributes nothing).
  const std::vector<std::byte> mine(static_cast<std::size_t>(comm.rank()), std::byte(comm.rank()));
  const std::vector<std::byte> all = comm.all_gather(mine);
  std::vector<std::byte> expected;
  for (int r = 0; r < comm.size(); ++r)
    expected.insert(expected.end(), static_cast<std::size_t>(r), std::byte(r));
  EXPECT_EQ(all, expected);
}

TEST(MpiCommunicator, BroadcastAndAny) {
  MpiCommunicator comm;
  std::vector<std::byte> data(5, std::byte(comm.is_root() ? 42 : 0));
  comm.broadcast(data, 0);
  for (const std::byte b : data) EXPECT_EQ(b, std::byte(42));
  EXPECT_FALSE(comm.any(false));
  EXPECT_TRUE(comm.any(comm.rank() == comm.size() - 1));
}

// Every rank gets the message of the lowest failing rank, named by its rank; the message alone
// when every rank failed alike; no error, no throw.
TEST(MpiCommunicator, ThrowIfAnyFailedNamesTheLowestFailingRankOnEveryRank) {
  MpiCommunicator comm;
  EXPECT_NO_THROW(throw_if_any_failed(comm, ""));
  const auto message = [&] {
    try {
      // The last rank and (with 3 or more ranks) rank 1 fail; the message is the lower one's.
      const bool fails = comm.rank() == comm.size() - 1 || (comm.size() > 2 && comm.rank() == 1);
      throw_if_any_failed(comm,
                          fails ? str("cannot read model-", comm.rank(), ".safetensors") : "");
    } catch (const CollectiveError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const int named = comm.size() > 2 ? 1 : comm.size() - 1;
  EXPECT_EQ(message(), comm.size() > 1
                           ? str("rank ", named, ": cannot read model-", named, ".safetensors")
                           : "cannot read model-0.safetensors");
  try {
    throw_if_any_failed(comm, "no such file: model.safetensors");
    ADD_FAILURE() << "no error on rank " << comm.rank();
  } catch (const CollectiveError& e) {
    EXPECT_EQ(std::string(e.what()), "no such file: model.safetensors");
  }
}

TEST(MpiCommunicator, LocalRankIsWithinTheNode) {
  MpiCommunicator comm;
  EXPECT_GE(comm.local_rank(), 0);
  EXPECT_LT(comm.local_rank(), comm.local_size());
}

// Units dealt over the ranks as the job deals them, reduced with the int64 all-reduce, give
// bitwise the Hessian that one process computes from all units.
TEST(HessianAllReduce, EqualsSingleProcessBitwise) {
  MpiCommunicator comm;
  std::uint64_t seed = std::random_device{}();
  std::vector<std::byte> seed_bytes(sizeof seed);
  std::memcpy(seed_bytes.data(), &seed, sizeof seed);
  comm.broadcast(seed_bytes, 0);
  std::memcpy(&seed, seed_bytes.data(), sizeof seed);
  SCOPED_TRACE(seed);

  const std::int64_t features = 20, units = 11;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<MatrixF> all;
  for (std::int64_t u = 0; u < units; ++u) {
    MatrixF x(13, features);
    for (float& v : x.values()) v = normal(rng) * (u % 3 == 0 ? 30.0f : 1.0f);
    all.push_back(x);
  }
  const auto backend = make_cpu_backend();
  const auto distributed = backend->make_hessian(features);
  const UnitRange mine = units_of_rank(units, comm.rank(), comm.size());
  for (std::int64_t u = mine.first; u < mine.last; ++u)
    distributed->add(all[static_cast<std::size_t>(u)]);
  distributed->all_reduce(comm);

  const auto single = backend->make_hessian(features);
  for (const MatrixF& x : all) single->add(x);

  const MatrixD a = distributed->hessian(), b = single->hessian();
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a.data()[i], b.data()[i]) << "element " << i;
}

}  // namespace
}  // namespace qshard
