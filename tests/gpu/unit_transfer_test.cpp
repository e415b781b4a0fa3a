// --layer_groups' boundary units between GPUs through host messages (the path of ranks without
// NCCL): the device units arrive bitwise, in the activation dtype (half the bytes of fp32 for
// bf16), staged through the two pinned buffers; a sender of another value size is refused.
#include <gtest/gtest.h>

#include "gpu_test_support.hpp"
#include "qshard/backend/backend.hpp"
#include "qshard/backend/cpu_backend.hpp"
#include "qshard/backend/cuda_backend.hpp"
#include "qshard/comm/mpi.hpp"
#include "qshard/model/synthetic_source.hpp"
#include "random_units.hpp"

namespace qshard {
namespace {

TEST(CudaUnitTransfer, UnitsArriveBitwiseInTheActivationDtypeThroughPinnedStaging) {
  QSHARD_REQUIRE_GPU();
  const auto backend = make_cuda_backend(0);
  for (const DType dtype : {DType::BF16, DType::F32}) {
    ModelConfig config = open_synthetic_model("tiny", 1)->config();
    config.torch_dtype = dtype;
    // Units of unequal sizes (a short last unit), more than the two staging buffers.
    const std::vector<std::int64_t> rows = {64, 32, 64, 16, 48};
    const auto sent =
        backend->store_units(config, test::random_units(rows, config.hidden_size, 11, 3.0F));
    SelfCommunicator loop;  // rank 0 sends to itself
    backend->send_units(config, *sent, loop, 0);
    ASSERT_EQ(loop.queued().size(), rows.size() + 1);  // the head, then one message per unit
    const std::size_t value_bytes = dtype == DType::BF16 ? 2 : 4;
    for (std::size_t i = 0; i < rows.size(); ++i)
      EXPECT_EQ(loop.queued()[i + 1].size(),
                static_cast<std::size_t>(rows[i] * config.hidden_size) * value_bytes);
    const auto received = backend->receive_units(config, loop, 0);
    ASSERT_EQ(received->size(), rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const MatrixF a = sent->unit(i), b = received->unit(i);
      ASSERT_EQ(b.rows(), rows[i]);
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
          << dtype_name(dtype) << " unit " << i;
    }
  }
}

TEST(CudaUnitTransfer, ASenderOfAnotherValueSizeIsRefusedByName) {
  QSHARD_REQUIRE_GPU();
  const auto gpu = make_cuda_backend(0);
  const auto cpu = make_cpu_backend();
  ModelConfig config = open_synthetic_model("tiny", 1)->config();
  config.torch_dtype = DType::BF16;
  const auto units =
      cpu->store_units(config, test::random_units({8}, config.hidden_size, 11, 3.0F));
  SelfCommunicator loop;
  cpu->send_units(config, *units, loop, 0);  // fp32 values
  try {
    (void)gpu->receive_units(config, loop, 0);
    FAIL() << "a 4-byte sender was accepted by a bf16 receiver";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("of 4-byte values, expected 128 of 2"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace qshard
