// The host transfer of --layer_groups' boundary units (the backend interface's default, the CPU
// backend's path): a round trip through a single-process communicator arrives bitwise, one head
// and one fp32 message per unit; a head that disagrees with the receiver's model is refused.
#include <gtest/gtest.h>

#include <cstring>

#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/backend/unit_messages.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "random_units.hpp"

namespace qshard {
namespace {

TEST(UnitMessages, HostRoundTripIsBitwiseWithOneMessagePerUnit) {
  const auto backend = make_cpu_backend();
  const ModelConfig config = open_synthetic_model("tiny", 1)->config();
  const std::vector<std::int64_t> rows = {32, 16, 48};
  const std::vector<MatrixF> units = test::random_units(rows, config.hidden_size, 3, 2.0F);
  const auto sent = backend->store_units(config, units);
  SelfCommunicator self;
  backend->send_units(config, *sent, self, 0);
  ASSERT_EQ(self.queued().size(), rows.size() + 1);
  for (std::size_t i = 0; i < rows.size(); ++i)
    EXPECT_EQ(self.queued()[i + 1].size(),
              static_cast<std::size_t>(rows[i] * config.hidden_size) * sizeof(float));
  const auto received = backend->receive_units(config, self, 0);
  ASSERT_EQ(received->size(), units.size());
  for (std::size_t i = 0; i < units.size(); ++i) {
    const MatrixF b = received->unit(i);
    ASSERT_EQ(b.rows(), rows[i]);
    EXPECT_EQ(std::memcmp(units[i].data(), b.data(), b.size() * sizeof(float)), 0) << "unit " << i;
  }
  EXPECT_TRUE(self.queued().empty());
}

TEST(UnitMessages, AHeadOfAnotherWidthOrMalformedIsRefusedNamingTheSender) {
  SelfCommunicator self;
  send_units_head(self, UnitsHead{96, 4, {8, 8}}, 0);
  try {
    (void)receive_units_head(self, 0, 128, 4);
    FAIL() << "a head of 96 columns was accepted for a model of 128";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("from rank 0: 96 columns of 4-byte values, expected 128"),
              std::string::npos)
        << e.what();
  }
  const std::array<std::byte, 3> short_head{};
  self.send(short_head, 0);
  EXPECT_THROW((void)receive_units_head(self, 0, 128, 4), Error);
  send_units_head(self, UnitsHead{128, 4, {8, 0}}, 0);  // a unit of no rows
  EXPECT_THROW((void)receive_units_head(self, 0, 128, 4), Error);
  // A unit message of the wrong size is refused by receive_into.
  const std::array<std::byte, 12> unit{};
  self.send(unit, 0);
  std::array<std::byte, 16> into{};
  EXPECT_THROW(self.receive_into(into, 0), Error);
}

TEST(UnitMessages, ASingleProcessCommunicatorRefusesOtherRanksAndAnEmptyReceive) {
  SelfCommunicator self;
  const std::array<std::byte, 4> bytes{};
  EXPECT_THROW(self.send(bytes, 1), Error);
  EXPECT_THROW((void)self.receive(0), Error);
  EXPECT_THROW((void)self.receive(1), Error);
}

}  // namespace
}  // namespace qshard
