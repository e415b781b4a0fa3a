// The decoder layer forward on one GPU (see backend/cuda/cuda_layer.hpp).
#include "cuda_layer.hpp"

#include <array>
#include <cmath>
#include <cstddef>

#include "cuda_hessian.hpp"
#include "cuda_layer_state.hpp"
#include "cuda_tiles.hpp"
#include "device.hpp"
#include "forward_kernels.hpp"
#include "moe_kernels.hpp"
#include "qshard/backend/host_tiles.hpp"

namespace qshard::cuda {

cudaDataType cuda_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::BF16:
      return CUDA_R_16BF;
    case DType::F16:
      return CUDA_R_16F;
    default:
      throw Error(str("CUDA forward: unsupported activation dtype ", dtype_name(dtype)));
  }
}

DType activation_dtype_for(DType dtype) {
  return dtype == DType::BF16 || dtype == DType::F16 ? dtype : DType::F32;
}

DeviceUnits::DeviceUnits(int device, DType activation, std::int64_t cols)
    : device_(device), activation_(activation), cols_(cols) {
  (void)cuda_type(activation);  // refuses other dtypes
}

DeviceUnits::~DeviceUnits() {
  int previous = 0;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device_ &&
                        cudaSetDevice(device_) == cudaSuccess;
  units_.clear();
  if (switched) (void)cudaSetDevice(previous);
}

void DeviceUnits::add_host(const MatrixF& unit) {
  require(unit.cols() == cols_, "calibration unit of ", unit.cols(), " features, expected ", cols_);
  const DeviceGuard guard(device_);
  const Stream stream;
  DeviceBuffer<std::byte> out(unit.size() * kernels::activation_size(activation_));
  if (activation_ == DType::F32) {
    QSHARD_CUDA_CHECK(cudaMemcpyAsync(out.data(), unit.data(), unit.size() * sizeof(float),
                                      cudaMemcpyHostToDevice, stream.get()));
  } else {
    DeviceBuffer<float> staging(unit.size());
    staging.upload(unit.data(), unit.size(), stream.get());
    QSHARD_CUDA_CHECK(kernels::convert(staging.data(), DType::F32, out.data(), activation_,
                                       unit.size(), stream.get()));
  }
  stream.synchronize();
  add_device(std::move(out), unit.rows());
}

void DeviceUnits::add_device(DeviceBuffer<std::byte> unit, std::int64_t rows) {
  require(unit.bytes() ==
              static_cast<std::size_t>(rows * cols_) * kernels::activation_size(activation_),
          "DeviceUnits: unit of ", unit.bytes(), " bytes for ", rows, " x ", cols_, " values");
  units_.push_back(std::move(unit));
  rows_.push_back(rows);
}

MatrixF DeviceUnits::unit(std::size_t index) const {
  const DeviceGuard guard(device_);
  const Stream stream;
  MatrixF m(rows(index), cols_);
  DeviceBuffer<float> f32(m.size());
  QSHARD_CUDA_CHECK(
      kernels::convert(data(index), activation_, f32.data(), DType::F32, m.size(), stream.get()));
  f32.download(m.data(), m.size(), stream.get());
  stream.synchronize();
  return m;
}

CudaLayer::State::State(int device_, const ModelConfig& config_, const LayerWeights& weights_,
                        const RotaryTable& rope_, DType activation_, const CudaSolver* solver_)
    : device(device_),
      solver(solver_),
      config(config_),
      weights(weights_),
      rope(rope_),
      activation(activation_),
      type(cuda_type(activation_)),
      element(kernels::activation_size(activation_)),
      cublas(stream.get()) {}

DeviceBuffer<std::byte> CudaLayer::State::upload_matrix(const MatrixF& w,
                                                        DeviceBuffer<float>* keep_fp32) {
  DeviceBuffer<std::byte> out(w.size() * element);
  DeviceBuffer<float> staging(w.size());
  staging.upload(w.data(), w.size(), stream.get());
  QSHARD_CUDA_CHECK(
      kernels::convert(staging.data(), DType::F32, out.data(), activation, w.size(), stream.get()));
  stream.synchronize();  // before the staging buffer is freed or handed over
  if (keep_fp32 != nullptr) *keep_fp32 = std::move(staging);
  return out;
}

void CudaLayer::State::upload_module(ModuleId m) {
  const MatrixF& w = weights[m];
  DeviceModule& d = modules[m];
  d.out = w.rows();
  d.in = w.cols();
  d.weight = upload_matrix(w, solver != nullptr ? &d.master : nullptr);
  const std::vector<float>& b = weights.bias_of(m);
  d.bias = DeviceBuffer<float>(b.size());
  d.bias.upload(b.data(), b.size(), stream.get());
  stream.synchronize();
}

void CudaLayer::State::upload_vector(DeviceBuffer<float>& buffer, const float* values,
                                     std::size_t count) {
  buffer = DeviceBuffer<float>(count);
  buffer.upload(values, count, stream.get());
}

DeviceModule& CudaLayer::State::module(ModuleId m) {
  const auto it = modules.find(m);
  require(it != modules.end(), "CudaLayer: layer has no module ",
          checkpoint_module_name(config, m));
  return it->second;
}

void CudaLayer::State::gemm(const void* x, const void* w, std::int64_t out, std::int64_t in,
                            void* y, cudaDataType y_type, std::int64_t tokens) {
  if (tokens == 0 || out == 0) return;
  const float one = 1.0f, zero = 0.0f;
  const auto o = static_cast<int>(out), i = static_cast<int>(in);
  QSHARD_CUDA_CHECK(cublasGemmEx(cublas.get(), CUBLAS_OP_T, CUBLAS_OP_N, o,
                                 static_cast<int>(tokens), i, &one, w, type, i, x, type, i, &zero,
                                 y, y_type, o, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaLayer::State::product(const void* x, ModuleId m, void* y, std::int64_t tokens) {
  DeviceModule& d = module(m);
  gemm(x, d.weight.data(), d.out, d.in, y, type, tokens);
  if (!d.bias.empty())
    QSHARD_CUDA_CHECK(kernels::add_bias(y, d.bias.data(), tokens, d.out, activation, stream.get()));
}

// Causal grouped-query attention of one sample (seq tokens): q [seq, q_dim], k/v [seq, kv_dim]
// -> out [seq, q_dim]. Per query group g: scores of the heads g, g + group, ... in one
// strided-batched product over the kv heads, the causal softmax of all heads, then P V likewise.
void CudaLayer::State::attention(const void* q, const void* k, const void* v, void* out,
                                 std::int64_t seq) {
  const std::int64_t d = config.head_dim, heads = config.num_attention_heads;
  const std::int64_t kv_heads = config.num_key_value_heads, group = heads / kv_heads;
  const auto q_dim = static_cast<int>(config.q_dim()), kv_dim = static_cast<int>(config.kv_dim());
  const std::int64_t square = seq * seq;
  auto* s = static_cast<float*>(scores.get(static_cast<std::size_t>(heads * square) * 4));
  void* p = probs.get(static_cast<std::size_t>(heads * square) * element);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d)), one = 1.0f, zero = 0.0f;
  const auto n = static_cast<int>(seq), dd = static_cast<int>(d);
  for (std::int64_t g = 0; g < group; ++g) {
    // scores^T (keys x queries, column-major) = K_h (Q_h)^T for head h = b * group + g.
    QSHARD_CUDA_CHECK(cublasGemmStridedBatchedEx(
        cublas.get(), CUBLAS_OP_T, CUBLAS_OP_N, n, n, dd, &scale, k, type, kv_dim, d,
        at(q, g * d, element), type, q_dim, group * d, &zero, s + g * square, CUDA_R_32F, n,
        group * square, static_cast<int>(kv_heads), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  QSHARD_CUDA_CHECK(kernels::causal_softmax(s, p, heads, seq, activation, stream.get()));
  for (std::int64_t g = 0; g < group; ++g) {
    // out_h^T (d x queries) = V_h^T P_h^T.
    QSHARD_CUDA_CHECK(cublasGemmStridedBatchedEx(
        cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, dd, n, n, &one, v, type, kv_dim, d,
        at(p, g * square, element), type, n, group * square, &zero, at(out, g * d, element), type,
        q_dim, group * d, static_cast<int>(kv_heads), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

MatrixF CudaLayer::State::download(const void* x, std::int64_t tokens, std::int64_t features) {
  MatrixF m(tokens, features);
  auto* f32 = static_cast<float*>(staging_out.get(m.size() * sizeof(float)));
  QSHARD_CUDA_CHECK(kernels::convert(x, activation, f32, DType::F32, m.size(), stream.get()));
  QSHARD_CUDA_CHECK(cudaMemcpyAsync(m.data(), f32, m.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                    stream.get()));
  stream.synchronize();
  return m;
}

bool CudaLayer::State::deliver(const LayerTargets& targets, std::optional<LinearInput> stop_after,
                               InputId input, const void* x, std::int64_t rows,
                               std::int64_t features) {
  if (HessianBuilder* builder = targets.hessian(input); builder != nullptr && rows > 0) {
    auto* device_builder = dynamic_cast<CudaHessianBuilder*>(builder);
    if (device_builder != nullptr && device_builder->device() == device)
      device_builder->add_device(x, activation, rows, stream.get());
    else
      builder->add(download(x, rows, features));
  }
  if (targets.capture && rows > 0) targets.capture(input, download(x, rows, features));
  return stop_after && *stop_after == input.kind;
}

bool CudaLayer::State::wants(const LayerTargets& targets, std::optional<LinearInput> stop_after,
                             LinearInput kind) {
  if (static_cast<bool>(targets.capture) || (stop_after && *stop_after == kind)) return true;
  return std::any_of(targets.hessians.begin(), targets.hessians.end(),
                     [kind](const auto& entry) { return entry.first.kind == kind; });
}

CudaLayer::State::UnitCache* CudaLayer::State::cache_of(const DeviceUnits& units,
                                                        std::size_t index) {
  if (cached_store != &units) {
    cached_store = &units;
    cache.clear();
    cache.resize(units.size());
    std::size_t need = 0;
    const std::int64_t per_token =
        config.q_dim() + config.hidden_size + (weights.sparse() ? 0 : weights[Linear::Gate].rows());
    for (std::size_t i = 0; i < units.size(); ++i)
      need += static_cast<std::size_t>(units.rows(i) * per_token) * element;
    std::size_t driver_free = 0, total_bytes = 0;
    QSHARD_CUDA_CHECK(cudaMemGetInfo(&driver_free, &total_bytes));
    const std::size_t free_bytes = available_device_memory();  // the pool's idle memory too
    const std::size_t reserve = std::max<std::size_t>(total_bytes / 4, std::size_t{8} << 30);
    cache_enabled = free_bytes > need + reserve;
  }
  return reuse_intermediates && cache_enabled ? &cache.at(index) : nullptr;
}

void CudaLayer::State::invalidate(Linear l) {
  for (UnitCache& u : cache) {
    if (l == Linear::Q || l == Linear::K || l == Linear::V) u.heads_ok = false;
    if (l != Linear::Gate && l != Linear::Up && l != Linear::Down) u.h_ok = false;
    if (l != Linear::Down) u.act_ok = false;
  }
}

CudaLayer::CudaLayer(int device, const ModelConfig& config, const LayerWeights& weights,
                     const RotaryTable& rope, DType activation, const CudaSolver* solver,
                     bool reuse_intermediates) {
  require(solver == nullptr || solver->device() == device, "CudaLayer: solver of device ",
          solver == nullptr ? -1 : solver->device(), " for a layer on device ", device);
  require(config.num_key_value_heads > 0 &&
              config.num_attention_heads % config.num_key_value_heads == 0,
          "CUDA forward: ", config.num_attention_heads, " heads are not groups of ",
          config.num_key_value_heads, " kv heads");
  const DeviceGuard guard(device);
  state_ = std::make_unique<State>(device, config, weights, rope, activation, solver);
  state_->reuse_intermediates = reuse_intermediates;
  State& s = *state_;
  for (const ModuleId m : layer_modules_for(config, weights.sparse())) s.upload_module(m);
  if (weights.sparse()) {
    s.router = s.upload_matrix(weights.router);
    if (!weights.shared_expert_gate.empty())
      s.shared_expert_gate = s.upload_matrix(weights.shared_expert_gate);
  }
  s.upload_vector(s.input_norm, weights.input_norm.data(), weights.input_norm.size());
  s.upload_vector(s.post_norm, weights.post_norm.data(), weights.post_norm.size());
  if (config.qk_norm) {
    s.upload_vector(s.q_norm, weights.q_norm.data(), weights.q_norm.size());
    s.upload_vector(s.k_norm, weights.k_norm.data(), weights.k_norm.size());
  }
  const auto table = static_cast<std::size_t>(rope.max_positions() * rope.head_dim() / 2);
  s.upload_vector(s.cos, rope.cos(0), table);
  s.upload_vector(s.sin, rope.sin(0), table);
  s.stream.synchronize();
}

CudaLayer::~CudaLayer() {
  int previous = 0;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != state_->device &&
                        cudaSetDevice(state_->device) == cudaSuccess;
  state_.reset();
  if (switched) (void)cudaSetDevice(previous);
}

void CudaLayer::refresh(ModuleId module) {
  const DeviceGuard guard(state_->device);
  state_->upload_module(module);
  state_->invalidate(module.linear);
}

void CudaLayer::set_quantized(ModuleId module, const DeviceQuantized& q,
                              const std::vector<std::int32_t>& g_idx) {
  State& s = *state_;
  DeviceModule& d = s.module(module);
  require(q.rows == d.out && q.columns == d.in, "set_quantized: result [", q.rows, ", ", q.columns,
          "] for ", checkpoint_module_name(s.config, module), " [", d.out, ", ", d.in, "]");
  require(static_cast<std::int64_t>(g_idx.size()) == q.columns, "set_quantized: g_idx of ",
          g_idx.size(), " for ", q.columns, " columns");
  const DeviceGuard guard(s.device);
  DeviceBuffer<std::int32_t> groups(g_idx.size());
  groups.upload(g_idx.data(), g_idx.size(), s.stream.get());
  QSHARD_CUDA_CHECK(kernels::dequantize(q.codes.data(), q.scales.data(), q.zeros.data(),
                                        groups.data(), q.rows, q.columns, q.groups, d.weight.data(),
                                        s.activation, s.stream.get()));
  s.stream.synchronize();  // before `groups` is freed
}

// This rank's tiles of one module: rows stacked, Hessian resident, RTN, GPTQ, per-tile objectives.
// Longer than 80 lines on purpose: every temporary device buffer here (stacked rows, an uploaded
// Hessian, g_idx) is freed at the end of its scope, and each is preceded by the stream
// synchronisation that makes that safe; one function keeps those pairs side by side.
std::unique_ptr<SolvedTiles> CudaLayer::quantize_tiles(const TileJob& job) {
  State& s = *state_;
  require(s.solver != nullptr, "CudaLayer: loaded without a solver, cannot quantize");
  const CudaSolver& solver = *s.solver;
  const GptqOptions& o = *job.options;
  DeviceModule& d = s.module(job.module);
  require(!d.master.empty(), "CudaLayer: ", checkpoint_module_name(s.config, job.module),
          " is already quantized in this layer");
  const DeviceGuard guard(s.device);
  const std::int64_t n = d.in;
  const TileDeal& deal = *job.deal;
  const std::vector<std::size_t> tiles = tiles_of(deal, job.rank);
  std::int64_t rows = 0;
  for (const std::size_t t : tiles) rows += deal[t].end - deal[t].begin;

  // This rank's rows, stacked in deal order (in place when they are one contiguous range).
  const float* w = d.master.data();
  DeviceBuffer<float> stacked;
  const bool contiguous =
      tiles.empty() || deal[tiles.back()].end - deal[tiles.front()].begin == rows;
  if (!tiles.empty()) {
    if (contiguous) {
      w += deal[tiles.front()].begin * n;
    } else {
      stacked = DeviceBuffer<float>(static_cast<std::size_t>(rows * n));
      std::int64_t row = 0;
      for (const std::size_t t : tiles) {
        const std::int64_t count = deal[t].end - deal[t].begin;
        QSHARD_CUDA_CHECK(cudaMemcpyAsync(stacked.data() + row * n, w + deal[t].begin * n,
                                          static_cast<std::size_t>(count * n) * sizeof(float),
                                          cudaMemcpyDeviceToDevice, s.stream.get()));
        row += count;
      }
      s.stream.synchronize();
      w = stacked.data();
    }
  }

  // The Hessian where it is, or uploaded when it lives elsewhere. A rank without tiles of the
  // module (a routed expert another rank owns) may have neither Hessian nor factorisation: it
  // contributes no rows, and the module's g_idx comes from the owner in the exchange.
  const auto* device_h = dynamic_cast<const DeviceHessian*>(job.hessian);
  DeviceBuffer<double> uploaded_h;
  const double* h = nullptr;
  const Factorization* const own_factor = rows == 0 ? nullptr : job.factor;
  if (rows == 0) {
    // nothing to solve or to measure
  } else if (device_h != nullptr && device_h->device() == s.device) {
    h = device_h->data();
  } else {
    const MatrixD host = job.hessian->to_host();
    uploaded_h = DeviceBuffer<double>(host.size());
    uploaded_h.upload(host.data(), host.size(), s.stream.get());
    s.stream.synchronize();
    h = uploaded_h.data();
  }

  DeviceRows rtn;
  rtn.device = s.device;
  rtn.bits = o.quant.bits;
  rtn.group_size = o.quant.group_size;
  rtn.q = solver.rtn_resident(w, rows, n, o.quant);
  rtn.g_idx = sequential_g_idx(n, o.quant.group_size);
  rtn.g_idx_device = DeviceBuffer<std::int32_t>(rtn.g_idx.size());
  rtn.g_idx_device.upload(rtn.g_idx.data(), rtn.g_idx.size(), s.stream.get());
  s.stream.synchronize();
  const std::vector<double> rtn_rows =
      rows == 0 ? std::vector<double>{}
                : solver.row_objectives(w, rtn.q, rtn.g_idx_device.data(), h);

  std::vector<double> result_rows = rtn_rows;
  DeviceRows result;
  if (own_factor != nullptr) {
    const std::shared_ptr<const DeviceFactor> factor = solver.device_factor(*own_factor);
    result.device = s.device;
    result.bits = o.quant.bits;
    result.group_size = o.quant.group_size;
    result.q = solver.solve_resident(w, rows, *factor, o);
    result.g_idx = solver.g_idx(*factor, o);
    result.g_idx_device = DeviceBuffer<std::int32_t>(result.g_idx.size());
    result.g_idx_device.upload(result.g_idx.data(), result.g_idx.size(), s.stream.get());
    s.stream.synchronize();
    result_rows = solver.row_objectives(w, result.q, result.g_idx_device.data(), h);
  } else {
    result = std::move(rtn);
  }
  auto solved = std::make_unique<CudaSolvedTiles>(std::move(result));
  // Each tile's objectives: its rows' values summed in row order.
  std::int64_t row = 0;
  for (const std::size_t t : tiles) {
    double gptq = 0.0, rtn_sum = 0.0;
    for (std::int64_t r = 0; r < deal[t].end - deal[t].begin; ++r, ++row) {
      gptq += result_rows[static_cast<std::size_t>(row)];
      rtn_sum += rtn_rows[static_cast<std::size_t>(row)];
    }
    solved->objective_gptq.push_back(gptq);
    solved->objective_rtn.push_back(rtn_sum);
  }
  return solved;
}

void CudaLayer::install(ModuleId id, const QuantizedModule& module) {
  State& s = *state_;
  DeviceModule& d = s.module(id);
  const auto* device_module = dynamic_cast<const CudaQuantizedModule*>(&module);
  require(device_module != nullptr && device_module->rows().device == s.device,
          "CudaLayer: quantized module held by another backend or device");
  const DeviceRows& rows = device_module->rows();
  require(rows.q.rows == d.out && rows.q.columns == d.in, "install: module [", rows.q.rows, ", ",
          rows.q.columns, "] for ", checkpoint_module_name(s.config, id), " [", d.out, ", ", d.in,
          "]");
  const DeviceGuard guard(s.device);
  QSHARD_CUDA_CHECK(kernels::dequantize(
      rows.q.codes.data(), rows.q.scales.data(), rows.q.zeros.data(), rows.g_idx_device.data(),
      rows.q.rows, rows.q.columns, rows.q.groups, d.weight.data(), s.activation, s.stream.get()));
  s.stream.synchronize();
  d.master = DeviceBuffer<float>();
  s.invalidate(id.linear);
}

DType CudaLayer::activation() const { return state_->activation; }
cudaStream_t CudaLayer::stream() const { return state_->stream.get(); }

bool CudaLayer::State::forward(const void* hidden, void* out, std::int64_t tokens,
                               std::int64_t seq_len, const LayerTargets& targets,
                               std::optional<LinearInput> stop_after, UnitCache* cache) {
  State& s = *this;
  const ModelConfig& c = s.config;
  require(seq_len > 0 && tokens % seq_len == 0, "CUDA forward: ", tokens,
          " tokens are not whole samples of ", seq_len);
  require(seq_len <= s.rope.max_positions(), "CUDA forward: seq_len ", seq_len,
          " beyond the rotary table's ", s.rope.max_positions());
  require(tokens <= 0x7fffffff, "CUDA forward: unit of ", tokens, " tokens is too large");
  const DeviceGuard guard(s.device);
  const cudaStream_t stream = s.stream.get();
  const std::size_t e = s.element;
  const std::int64_t hidden_size = c.hidden_size, q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const std::int64_t inter = s.weights.sparse() ? 0 : s.weights[Linear::Gate].rows();
  const auto elements = [tokens](std::int64_t features) {
    return static_cast<std::size_t>(tokens * features);
  };
  const auto wanted = [&](LinearInput kind) { return wants(targets, stop_after, kind); };
  // The unit's cached buffer (grown to `bytes`), or scratch without a cache.
  const auto buffer = [&](DeviceBuffer<std::byte>* cached, Scratch& scratch, std::size_t bytes) {
    if (cached == nullptr) return scratch.get(bytes);
    cached->reserve(bytes);
    return static_cast<void*>(cached->data());
  };
  const auto deliver = [&](LinearInput input, const void* x, std::int64_t features) {
    return s.deliver(targets, stop_after, {input, kDense}, x, tokens, features);
  };

  // Each stage's result comes from the unit's cache when the modules it depends on have not
  // changed since it was computed (the same kernels on the same inputs: the same bits).
  void* xn = s.xn.get(elements(hidden_size) * e);
  const bool heads_cached = cache != nullptr && cache->heads_ok;
  const bool h_cached = cache != nullptr && cache->h_ok;
  const bool act_cached = cache != nullptr && cache->act_ok;
  if (!heads_cached || wanted(LinearInput::Attention)) {
    QSHARD_CUDA_CHECK(kernels::rms_norm(hidden, s.input_norm.data(),
                                        static_cast<float>(c.rms_norm_eps), xn, tokens, hidden_size,
                                        s.activation, stream));
    if (deliver(LinearInput::Attention, xn, hidden_size)) return false;
  }

  void* heads = buffer(cache ? &cache->heads : nullptr, s.heads, elements(q_dim) * e);
  if (!heads_cached) {
    void* q = s.q.get(elements(q_dim) * e);
    void* k = s.k.get(elements(kv_dim) * e);
    void* v = s.v.get(elements(kv_dim) * e);
    s.product(xn, Linear::Q, q, tokens);
    s.product(xn, Linear::K, k, tokens);
    s.product(xn, Linear::V, v, tokens);
    if (c.qk_norm) {  // Qwen3: each head's values normalised (rows of head_dim), before rotary
      const auto eps = static_cast<float>(c.rms_norm_eps);
      QSHARD_CUDA_CHECK(kernels::rms_norm(q, s.q_norm.data(), eps, q,
                                          tokens * c.num_attention_heads, c.head_dim, s.activation,
                                          stream));
      QSHARD_CUDA_CHECK(kernels::rms_norm(k, s.k_norm.data(), eps, k,
                                          tokens * c.num_key_value_heads, c.head_dim, s.activation,
                                          stream));
    }
    QSHARD_CUDA_CHECK(kernels::rotary(q, tokens, c.num_attention_heads, c.head_dim, q_dim, seq_len,
                                      s.cos.data(), s.sin.data(), s.activation, stream));
    QSHARD_CUDA_CHECK(kernels::rotary(k, tokens, c.num_key_value_heads, c.head_dim, kv_dim, seq_len,
                                      s.cos.data(), s.sin.data(), s.activation, stream));
    for (std::int64_t t0 = 0; t0 < tokens; t0 += seq_len)
      s.attention(at(q, t0 * q_dim, e), at(k, t0 * kv_dim, e), at(v, t0 * kv_dim, e),
                  at(heads, t0 * q_dim, e), seq_len);
    if (cache != nullptr) cache->heads_ok = true;
  }
  if (deliver(LinearInput::AttentionOutput, heads, q_dim)) return false;

  void* tmp = s.tmp.get(elements(hidden_size) * e);
  void* h = buffer(cache ? &cache->h : nullptr, s.h, elements(hidden_size) * e);
  if (!h_cached) {
    s.product(heads, Linear::O, tmp, tokens);
    QSHARD_CUDA_CHECK(kernels::add(hidden, tmp, h, elements(hidden_size), s.activation, stream));
    if (cache != nullptr) cache->h_ok = true;
  }
  if (!act_cached || wanted(LinearInput::Mlp)) {
    QSHARD_CUDA_CHECK(kernels::rms_norm(h, s.post_norm.data(), static_cast<float>(c.rms_norm_eps),
                                        xn, tokens, hidden_size, s.activation, stream));
    if (s.weights.sparse()) {
      auto* acc = static_cast<float*>(s.accumulator.get(elements(hidden_size) * sizeof(float)));
      if (!s.sparse_mlp(xn, tokens, targets, stop_after, acc)) return false;
      QSHARD_CUDA_CHECK(
          kernels::add_accumulator(h, acc, out, elements(hidden_size), s.activation, stream));
      return true;
    }
    if (deliver(LinearInput::Mlp, xn, hidden_size)) return false;
  }

  void* gate = buffer(cache ? &cache->act : nullptr, s.gate, elements(inter) * e);
  if (!act_cached) {
    void* up = s.up.get(elements(inter) * e);
    s.product(xn, Linear::Gate, gate, tokens);
    s.product(xn, Linear::Up, up, tokens);
    QSHARD_CUDA_CHECK(kernels::swiglu(gate, up, elements(inter), s.activation, stream));
    if (cache != nullptr) cache->act_ok = true;
  }
  if (deliver(LinearInput::MlpDown, gate, inter)) return false;
  s.product(gate, Linear::Down, tmp, tokens);
  QSHARD_CUDA_CHECK(kernels::add(h, tmp, out, elements(hidden_size), s.activation, stream));
  return true;
}

bool CudaLayer::forward_device(const void* hidden, void* out, std::int64_t tokens,
                               std::int64_t seq_len, const LayerTargets& targets,
                               std::optional<LinearInput> stop_after) {
  return state_->forward(hidden, out, tokens, seq_len, targets, stop_after, nullptr);
}

MatrixF CudaLayer::forward(const MatrixF& hidden, std::int64_t seq_len, const LayerTargets& targets,
                           std::optional<LinearInput> stop_after) {
  State& s = *state_;
  require(hidden.cols() == s.config.hidden_size, "CUDA forward: hidden states have ", hidden.cols(),
          " features, the model ", s.config.hidden_size);
  const DeviceGuard guard(s.device);
  const cudaStream_t stream = s.stream.get();
  const std::size_t count = hidden.size();
  auto* f32 = static_cast<float*>(s.staging_in.get(count * sizeof(float)));
  QSHARD_CUDA_CHECK(
      cudaMemcpyAsync(f32, hidden.data(), count * sizeof(float), cudaMemcpyHostToDevice, stream));
  void* in = f32;
  if (s.activation != DType::F32) {
    in = s.unit_in.get(count * s.element);
    QSHARD_CUDA_CHECK(kernels::convert(f32, DType::F32, in, s.activation, count, stream));
  }
  void* out = s.unit_out.get(count * s.element);
  if (!forward_device(in, out, hidden.rows(), seq_len, targets, stop_after)) {
    s.stream.synchronize();
    return {};
  }
  return s.download(out, hidden.rows(), hidden.cols());
}

namespace {
const DeviceUnits& device_units(const UnitStore& units, int device, DType activation) {
  const auto* d = dynamic_cast<const DeviceUnits*>(&units);
  require(d != nullptr, "CUDA forward: calibration units stored by another backend");
  require(d->device() == device && d->activation() == activation, "CUDA forward: units on device ",
          d->device(), " in ", dtype_name(d->activation()), " for a layer on device ", device,
          " in ", dtype_name(activation));
  return *d;
}
}  // namespace

void CudaLayer::forward_unit(const UnitStore& units, std::size_t index, std::int64_t seq_len,
                             const LayerTargets& targets, std::optional<LinearInput> stop_after) {
  State& s = *state_;
  const DeviceUnits& in = device_units(units, s.device, s.activation);
  const std::int64_t rows = in.rows(index);
  void* out = s.unit_out.get(static_cast<std::size_t>(rows * in.cols()) * s.element);
  const DeviceGuard guard(s.device);
  s.forward(in.data(index), out, rows, seq_len, targets, stop_after, s.cache_of(in, index));
}

std::unique_ptr<UnitStore> CudaLayer::forward_all(const UnitStore& units, std::int64_t seq_len) {
  State& s = *state_;
  const DeviceUnits& in = device_units(units, s.device, s.activation);
  const DeviceGuard guard(s.device);
  auto next = std::make_unique<DeviceUnits>(s.device, s.activation, in.cols());
  for (std::size_t i = 0; i < in.size(); ++i) {
    DeviceBuffer<std::byte> out(static_cast<std::size_t>(in.rows(i) * in.cols()) * s.element);
    s.forward(in.data(i), out.data(), in.rows(i), seq_len, {}, std::nullopt, s.cache_of(in, i));
    next->add_device(std::move(out), in.rows(i));
  }
  s.stream.synchronize();
  return next;
}

}  // namespace qshard::cuda
