#include "cuda_tiles.hpp"

#include <algorithm>
#include <span>

#include "nccl_communicator.hpp"
#include "qshard/backend/host_tiles.hpp"

namespace qshard::cuda {
namespace {

// Copies rows [src_row, src_row + rows) of a [*, width] device matrix to rows starting at dst_row.
template <typename T>
void copy_rows(const T* src, std::int64_t src_row, T* dst, std::int64_t dst_row, std::int64_t rows,
               std::int64_t width, cudaStream_t stream) {
  if (rows == 0 || width == 0) return;
  QSHARD_CUDA_CHECK(cudaMemcpyAsync(dst + dst_row * width, src + src_row * width,
                                    static_cast<std::size_t>(rows * width) * sizeof(T),
                                    cudaMemcpyDeviceToDevice, stream));
}

DeviceQuantized allocate(std::int64_t rows, std::int64_t columns, std::int64_t groups) {
  DeviceQuantized q;
  q.rows = q.rows_padded = rows;
  q.columns = columns;
  q.groups = groups;
  q.codes = DeviceBuffer<std::uint8_t>(static_cast<std::size_t>(rows * columns));
  q.scales = DeviceBuffer<float>(static_cast<std::size_t>(rows * groups));
  q.zeros = DeviceBuffer<std::int32_t>(static_cast<std::size_t>(rows * groups));
  return q;
}

void copy_block(const DeviceQuantized& from, std::int64_t from_row, DeviceQuantized& to,
                std::int64_t to_row, std::int64_t rows, cudaStream_t stream) {
  copy_rows(from.codes.data(), from_row, to.codes.data(), to_row, rows, from.columns, stream);
  copy_rows(from.scales.data(), from_row, to.scales.data(), to_row, rows, from.groups, stream);
  copy_rows(from.zeros.data(), from_row, to.zeros.data(), to_row, rows, from.groups, stream);
}

// Every rank's tiles in `slots` fixed slots of `slot_rows` rows, all-gathered over NCCL, then
// placed in row order.
DeviceRows nccl_gather(NcclCommunicator& nccl, DeviceRows& mine, const TileDeal& deal) {
  const Stream stream;
  const int ranks = nccl.size();
  std::int64_t slots = 0, slot_rows = 0;
  for (int r = 0; r < ranks; ++r)
    slots = std::max<std::int64_t>(slots, static_cast<std::int64_t>(tiles_of(deal, r).size()));
  for (const RowTile& t : deal) slot_rows = std::max(slot_rows, t.end - t.begin);
  const std::int64_t n = mine.q.columns, groups = mine.q.groups;
  DeviceQuantized send = allocate(slots * slot_rows, n, groups);
  DeviceQuantized recv = allocate(ranks * slots * slot_rows, n, groups);
  std::int64_t row = 0, slot = 0;
  for (const std::size_t t : tiles_of(deal, nccl.rank())) {
    const std::int64_t rows = deal[t].end - deal[t].begin;
    copy_block(mine.q, row, send, slot++ * slot_rows, rows, stream.get());
    row += rows;
  }
  QSHARD_CUDA_CHECK(ncclGroupStart());
  nccl.all_gather_device(send.codes.data(), recv.codes.data(), send.codes.bytes(), stream.get());
  nccl.all_gather_device(send.scales.data(), recv.scales.data(), send.scales.bytes(), stream.get());
  nccl.all_gather_device(send.zeros.data(), recv.zeros.data(), send.zeros.bytes(), stream.get());
  QSHARD_CUDA_CHECK(ncclGroupEnd());
  DeviceRows module;
  module.device = mine.device;
  module.bits = mine.bits;
  module.group_size = mine.group_size;
  module.q = allocate(deal.empty() ? 0 : deal.back().end, n, groups);
  for (int r = 0; r < ranks; ++r) {
    std::int64_t k = 0;
    for (const std::size_t t : tiles_of(deal, r))
      copy_block(recv, (r * slots + k++) * slot_rows, module.q, deal[t].begin,
                 deal[t].end - deal[t].begin, stream.get());
  }
  stream.synchronize();
  nccl.check_async();
  // The g_idx of the rank that solved the first tile (a routed expert's rows are all its owner's:
  // the others have no factorisation, hence no act_order permutation).
  module.g_idx = std::move(mine.g_idx);
  if (!deal.empty())
    nccl.broadcast(std::as_writable_bytes(std::span(module.g_idx)), deal.front().owner);
  module.g_idx_device = DeviceBuffer<std::int32_t>(module.g_idx.size());
  module.g_idx_device.upload(module.g_idx.data(), module.g_idx.size(), stream.get());
  stream.synchronize();
  return module;
}

}  // namespace

QuantizedWeight DeviceRows::to_host() const {
  const DeviceGuard guard(device);
  QuantizedWeight w =
      QuantizedWeight::allocate(bits, group_size, q.rows, q.columns, q.groups, g_idx);
  const Stream stream;
  q.codes.download(w.codes.data(), w.codes.size(), stream.get());
  q.scales.download(w.scales.data(), w.scales.size(), stream.get());
  q.zeros.download(w.zeros.data(), w.zeros.size(), stream.get());
  stream.synchronize();
  return w;
}

CudaSolvedTiles::~CudaSolvedTiles() {
  const DeviceGuard guard(rows_.device);
  rows_ = DeviceRows{};
}

CudaQuantizedModule::~CudaQuantizedModule() {
  const DeviceGuard guard(rows_.device);
  rows_ = DeviceRows{};
}

DeviceRows upload_rows(int device, const QuantizedWeight& weight, cudaStream_t stream) {
  const DeviceGuard guard(device);
  DeviceRows rows;
  rows.device = device;
  rows.bits = weight.bits;
  rows.group_size = weight.group_size;
  rows.q = allocate(weight.rows(), weight.cols(), weight.groups());
  rows.q.codes.upload(weight.codes.data(), weight.codes.size(), stream);
  rows.q.scales.upload(weight.scales.data(), weight.scales.size(), stream);
  rows.q.zeros.upload(weight.zeros.data(), weight.zeros.size(), stream);
  rows.g_idx = weight.g_idx;
  rows.g_idx_device = DeviceBuffer<std::int32_t>(rows.g_idx.size());
  rows.g_idx_device.upload(rows.g_idx.data(), rows.g_idx.size(), stream);
  QSHARD_CUDA_CHECK(cudaStreamSynchronize(stream));
  return rows;
}

std::unique_ptr<QuantizedModule> gather_device_tiles(int device, std::unique_ptr<SolvedTiles> mine,
                                                     const TileDeal& deal, Communicator& comm) {
  auto* solved = dynamic_cast<CudaSolvedTiles*>(mine.get());
  require(solved != nullptr && solved->rows().device == device,
          "CUDA backend: solved tiles held by another backend or device");
  const DeviceGuard guard(device);
  std::unique_ptr<CudaQuantizedModule> module;
  if (comm.size() == 1) {
    // This rank's tiles are the module's rows in order.
    DeviceRows& rows = solved->rows();
    rows.q.rows_padded = rows.q.rows;
    module = std::make_unique<CudaQuantizedModule>(std::move(rows));
  } else if (auto* nccl = dynamic_cast<NcclCommunicator*>(&comm)) {
    module = std::make_unique<CudaQuantizedModule>(nccl_gather(*nccl, solved->rows(), deal));
  } else {
    const Stream stream;
    const QuantizedWeight all = all_gather_tiles(solved->to_host(), deal, comm);
    module = std::make_unique<CudaQuantizedModule>(upload_rows(device, all, stream.get()));
  }
  sum_tile_objectives(*mine, deal, comm, *module);
  return module;
}

}  // namespace qshard::cuda
