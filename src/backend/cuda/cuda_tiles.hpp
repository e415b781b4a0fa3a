#pragma once
// Solved tiles and quantized modules in the memory of one GPU, and their exchange between ranks:
// NCCL all-gathers of the packed codes, scales and zeros in fixed-size tile slots when the job's
// communicator is an NcclCommunicator, else through the host communicator (the same bits).
#include <cstdint>
#include <memory>
#include <vector>

#include "cuda_solver.hpp"
#include "qshard/backend/backend.hpp"

namespace qshard::cuda {

// A quantized row block on the device with its g_idx (host and device) and settings.
struct DeviceRows {
  int device = 0;
  int bits = 4;
  std::int64_t group_size = -1;
  DeviceQuantized q;
  std::vector<std::int32_t> g_idx;
  DeviceBuffer<std::int32_t> g_idx_device;

  QuantizedWeight to_host() const;  // rows [0, q.rows)
};

class CudaSolvedTiles final : public SolvedTiles {
 public:
  explicit CudaSolvedTiles(DeviceRows rows) : rows_(std::move(rows)) {}
  ~CudaSolvedTiles() override;
  QuantizedWeight to_host() const override { return rows_.to_host(); }
  DeviceRows& rows() { return rows_; }

 private:
  DeviceRows rows_;
};

class CudaQuantizedModule final : public QuantizedModule {
 public:
  explicit CudaQuantizedModule(DeviceRows rows) : rows_(std::move(rows)) {}
  ~CudaQuantizedModule() override;
  QuantizedWeight to_host() const override { return rows_.to_host(); }
  const DeviceRows& rows() const { return rows_; }

 private:
  DeviceRows rows_;
};

// `weight` uploaded to `device` as DeviceRows.
DeviceRows upload_rows(int device, const QuantizedWeight& weight, cudaStream_t stream);

// Backend::gather_tiles of the CUDA backend (collective).
std::unique_ptr<QuantizedModule> gather_device_tiles(int device, std::unique_ptr<SolvedTiles> mine,
                                                     const TileDeal& deal, Communicator& comm);

}  // namespace qshard::cuda
