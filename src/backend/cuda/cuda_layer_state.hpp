#pragma once
// What a CudaLayer holds on its GPU (cuda_layer.hpp), shared by the dense forward and quantization
// (cuda_layer.cpp) and the mixture-of-experts MLP (cuda_sparse_mlp.cpp): each module's weights in
// the activation dtype with its fp32 master copy and bias, the norms and rotary tables, a sparse
// layer's router, scratch buffers, and the per-unit caches of intermediates.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "cuda_layer.hpp"
#include "cuda_solver.hpp"
#include "device.hpp"
#include "qshard/model/moe.hpp"

namespace qshard::cuda {

// Device bytes growing on demand (never shrinking; the contents are lost when they grow).
class Scratch {
 public:
  void* get(std::size_t bytes) {
    buffer_.reserve(bytes);
    return buffer_.data();
  }

 private:
  DeviceBuffer<std::byte> buffer_;
};

inline std::byte* at(void* base, std::int64_t elements, std::size_t element_size) {
  return static_cast<std::byte*>(base) + static_cast<std::size_t>(elements) * element_size;
}
inline const std::byte* at(const void* base, std::int64_t elements, std::size_t element_size) {
  return static_cast<const std::byte*>(base) + static_cast<std::size_t>(elements) * element_size;
}

cudaDataType cuda_type(DType dtype);

// One linear module on the device.
struct DeviceModule {
  DeviceBuffer<std::byte> weight;  // [out, in] in the activation dtype
  DeviceBuffer<float> master;      // fp32 weights until the module is installed (with a solver)
  DeviceBuffer<float> bias;        // empty when the module has none
  std::int64_t out = 0, in = 0;
};

// A sparse layer's routing of one unit: each expert's tokens (ascending rows of the unit) and
// their routing weights, expert after expert, on the host and the device.
struct DeviceRouting {
  std::vector<std::int64_t> begin;  // expert e's tokens are [begin[e], begin[e + 1])
  std::vector<std::int32_t> rows;
  std::vector<float> weights;
  DeviceBuffer<std::int32_t> rows_device;
  DeviceBuffer<float> weights_device;
  std::int64_t count(std::int64_t e) const {
    return begin[static_cast<std::size_t>(e) + 1] - begin[static_cast<std::size_t>(e)];
  }
};

struct CudaLayer::State {
  State(int device_, const ModelConfig& config_, const LayerWeights& weights_,
        const RotaryTable& rope_, DType activation_, const CudaSolver* solver_);

  // Uploads module `m` (and its bias) converted to the activation dtype; with a solver, keeps the
  // fp32 upload as the module's master copy for quantize_tiles.
  void upload_module(ModuleId m);
  // `w` converted to the activation dtype, on the device.
  DeviceBuffer<std::byte> upload_matrix(const MatrixF& w, DeviceBuffer<float>* keep_fp32 = nullptr);
  void upload_vector(DeviceBuffer<float>& buffer, const float* values, std::size_t count);
  DeviceModule& module(ModuleId m);

  // y [tokens, out] = x [tokens, in] W^T (+ bias), fp32 accumulation, y in the activation dtype.
  void product(const void* x, ModuleId m, void* y, std::int64_t tokens);
  // The same without bias for a weight [out, in] in the activation dtype, y of type `y_type`.
  void gemm(const void* x, const void* w, std::int64_t out, std::int64_t in, void* y,
            cudaDataType y_type, std::int64_t tokens);
  // Causal grouped-query attention of one sample (see cuda_layer.cpp).
  void attention(const void* q, const void* k, const void* v, void* out, std::int64_t seq);
  // x [tokens, features] in the activation dtype -> host fp32 (synchronises).
  MatrixF download(const void* x, std::int64_t tokens, std::int64_t features);

  // Hands linear input `input` (x [rows, features] on the device) to its Hessian builder and the
  // capture, if the caller asked; true when the forward stops after it.
  bool deliver(const LayerTargets& targets, std::optional<LinearInput> stop_after, InputId input,
               const void* x, std::int64_t rows, std::int64_t features);
  // Whether the caller wants inputs of kind `kind` (of any owner) for Hessians, captures, or to
  // stop there.
  static bool wants(const LayerTargets& targets, std::optional<LinearInput> stop_after,
                    LinearInput kind);

  // The sparse MLP of xn [tokens, hidden] added into acc [tokens, hidden] fp32 (zeroed here):
  // routing, each routed expert on its tokens, the gated shared expert (cuda_sparse_mlp.cpp).
  // Returns false when it stopped after `stop_after` (acc then incomplete).
  bool sparse_mlp(const void* xn, std::int64_t tokens, const LayerTargets& targets,
                  std::optional<LinearInput> stop_after, float* acc);
  // The routing of xn's tokens (router logits in fp32 on the device, routed on the host by
  // model/moe.hpp's route(): the CPU's choices and ties for the same logits).
  const DeviceRouting& route_unit(const void* xn, std::int64_t tokens);
  // silu(x Wg^T) * (x Wu^T) of one expert (or the shared one) into `act` [rows, width].
  void expert_intermediate(const void* x, std::int32_t expert, std::int64_t rows, void* act);

  const int device;
  const CudaSolver* solver;
  const ModelConfig& config;
  const LayerWeights& weights;
  const RotaryTable& rope;
  const DType activation;
  const cudaDataType type;
  const std::size_t element;
  Stream stream;
  CublasHandle cublas;
  std::map<ModuleId, DeviceModule> modules;
  DeviceBuffer<std::byte> router, shared_expert_gate;  // sparse layers, activation dtype
  DeviceRouting routing;

  // Intermediates of each calibration unit that a later forward of the same unit reuses (see
  // UnitCache), for the units of one store; `cache_enabled` when they fit in device memory.
  struct UnitCache {
    DeviceBuffer<std::byte> heads;  // attention output [tokens, q_dim]: valid with q, k, v
    DeviceBuffer<std::byte> h;      // hidden + o(heads) [tokens, hidden]: valid with q, k, v, o
    DeviceBuffer<std::byte> act;    // SwiGLU output [tokens, inter]: also valid with gate, up
    bool heads_ok = false, h_ok = false, act_ok = false;
  };
  const UnitStore* cached_store = nullptr;
  std::vector<UnitCache> cache;
  bool cache_enabled = false;
  bool reuse_intermediates = true;

  // The decoder forward (CudaLayer::forward_device), reusing and filling `cache` when given.
  bool forward(const void* hidden, void* out, std::int64_t tokens, std::int64_t seq_len,
               const LayerTargets& targets, std::optional<LinearInput> stop_after,
               UnitCache* cache);
  // The cache of unit `index` of `units`, or null when the caches of all of the store's units
  // would not fit in device memory with room left for the solve (decided once per store).
  UnitCache* cache_of(const DeviceUnits& units, std::size_t index);
  void invalidate(Linear l);

  DeviceBuffer<float> input_norm, post_norm, cos, sin;
  DeviceBuffer<float> q_norm, k_norm;  // Qwen3's per-head RMSNorm weights (qk_norm)
  Scratch xn, q, k, v, heads, h, tmp, gate, up, scores, probs;
  Scratch staging_in, staging_out, unit_in, unit_out;
  Scratch logits, expert_in, expert_act, expert_out, accumulator;  // sparse layers
};

}  // namespace qshard::cuda
