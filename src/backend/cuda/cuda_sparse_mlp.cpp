// The mixture-of-experts MLP of a sparse decoder layer on one GPU (see model/moe.hpp for what it
// computes): the router's logits in fp32 on the device, the routing on the host with the CPU's
// route() (the same experts, weights and ties for the same logits), then per expert in expert
// order: its tokens gathered into consecutive rows, one product per module over all of them,
// SwiGLU, and its output added back to its tokens' rows scaled by their routing weights in an fp32
// accumulator; then Qwen2-MoE's shared expert, gated by sigmoid(x g^T). Each expert's products
// cover the unit's tokens routed to it: the shapes depend on the unit, never on the rank count.
#include <algorithm>

#include "cuda_hessian.hpp"
#include "cuda_layer_state.hpp"
#include "forward_kernels.hpp"
#include "moe_kernels.hpp"

namespace qshard::cuda {

const DeviceRouting& CudaLayer::State::route_unit(const void* xn, std::int64_t tokens) {
  const MoeConfig& moe = config.moe;
  const std::int64_t experts = moe.num_experts;
  auto* device_logits =
      static_cast<float*>(logits.get(static_cast<std::size_t>(tokens * experts) * sizeof(float)));
  gemm(xn, router.data(), experts, config.hidden_size, device_logits, CUDA_R_32F, tokens);
  MatrixF host_logits(tokens, experts);
  QSHARD_CUDA_CHECK(cudaMemcpyAsync(host_logits.data(), device_logits,
                                    host_logits.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                    stream.get()));
  stream.synchronize();
  const Routing r = route(moe, host_logits);

  // Expert-major lists of (token, weight), tokens ascending within each expert.
  DeviceRouting& out = routing;
  out.begin.assign(static_cast<std::size_t>(experts) + 1, 0);
  for (const std::int32_t e : r.experts) ++out.begin[static_cast<std::size_t>(e) + 1];
  for (std::size_t e = 0; e < static_cast<std::size_t>(experts); ++e)
    out.begin[e + 1] += out.begin[e];
  std::vector<std::int64_t> next(out.begin.begin(), out.begin.end() - 1);
  out.rows.resize(r.experts.size());
  out.weights.resize(r.experts.size());
  for (std::int64_t t = 0; t < r.tokens; ++t)
    for (std::int64_t j = 0; j < r.k; ++j) {
      const auto index = static_cast<std::size_t>(t * r.k + j);
      const auto slot =
          static_cast<std::size_t>(next[static_cast<std::size_t>(r.experts[index])]++);
      out.rows[slot] = static_cast<std::int32_t>(t);
      out.weights[slot] = r.weights[index];
    }
  out.rows_device.reserve(out.rows.size());
  out.weights_device.reserve(out.weights.size());
  out.rows_device.upload(out.rows.data(), out.rows.size(), stream.get());
  out.weights_device.upload(out.weights.data(), out.weights.size(), stream.get());
  return out;
}

void CudaLayer::State::expert_intermediate(const void* x, std::int32_t expert, std::int64_t rows,
                                           void* act) {
  const std::int64_t width = module({Linear::Gate, expert}).out;
  void* up_values = up.get(static_cast<std::size_t>(rows * width) * element);
  product(x, {Linear::Gate, expert}, act, rows);
  product(x, {Linear::Up, expert}, up_values, rows);
  QSHARD_CUDA_CHECK(kernels::swiglu(act, up_values, static_cast<std::size_t>(rows * width),
                                    activation, stream.get()));
}

bool CudaLayer::State::sparse_mlp(const void* xn, std::int64_t tokens, const LayerTargets& targets,
                                  std::optional<LinearInput> stop_after, float* acc) {
  const MoeConfig& moe = config.moe;
  const std::int64_t hidden = config.hidden_size;
  const bool shared = !shared_expert_gate.empty();
  const bool every_token = targets.experts == ExpertCapture::All;
  const cudaStream_t s = stream.get();
  const DeviceRouting& r = route_unit(xn, tokens);
  const auto width_of = [this](std::int32_t e) { return module({Linear::Down, e}).in; };
  std::int64_t most = 0;  // the most tokens any expert has in this unit
  for (std::int64_t e = 0; e < moe.num_experts; ++e) most = std::max(most, r.count(e));
  std::int64_t widest = 0;
  for (std::int64_t e = 0; e < moe.num_experts; ++e)
    widest = std::max(widest, width_of(static_cast<std::int32_t>(e)));
  void* x_e = expert_in.get(static_cast<std::size_t>(most * hidden) * element);
  const auto gather = [&](std::int64_t e) {
    const auto begin = r.begin[static_cast<std::size_t>(e)];
    QSHARD_CUDA_CHECK(kernels::gather_rows(xn, r.rows_device.data() + begin, r.count(e), hidden,
                                           x_e, activation, s));
  };

  // The experts' gate/up inputs: their tokens' rows (every row once with --moe_calibration all).
  if (wants(targets, stop_after, LinearInput::Mlp)) {
    for (std::int64_t e = 0; e < moe.num_experts && !every_token; ++e) {
      gather(e);
      (void)deliver(targets, std::nullopt, {LinearInput::Mlp, static_cast<std::int32_t>(e)}, x_e,
                    r.count(e), hidden);
    }
    if (every_token)
      (void)deliver(targets, std::nullopt, {LinearInput::Mlp, kEveryExpert}, xn, tokens, hidden);
    if (shared)
      (void)deliver(targets, std::nullopt, {LinearInput::Mlp, kSharedExpert}, xn, tokens, hidden);
    if (stop_after == LinearInput::Mlp) return false;
  }

  // Each expert on its tokens; its down input delivered; its output added to its tokens' rows.
  const bool want_down = wants(targets, stop_after, LinearInput::MlpDown);
  const bool finish = stop_after != LinearInput::MlpDown;  // else only the down inputs are wanted
  QSHARD_CUDA_CHECK(cudaMemsetAsync(acc, 0, static_cast<std::size_t>(tokens * hidden) * 4, s));
  if (shared) widest = std::max(widest, width_of(kSharedExpert));
  // Room for any expert's intermediate, of its tokens or of every token.
  void* act = expert_act.get(static_cast<std::size_t>(tokens * widest) * element);
  void* y = expert_out.get(static_cast<std::size_t>(tokens * hidden) * element);
  for (std::int64_t e = 0; e < moe.num_experts; ++e) {
    const auto expert = static_cast<std::int32_t>(e);
    const InputId down_input{LinearInput::MlpDown, expert};
    if (every_token && want_down &&
        (targets.hessian(down_input) != nullptr || static_cast<bool>(targets.capture))) {
      expert_intermediate(xn, expert, tokens, act);  // every token through the expert
      (void)deliver(targets, std::nullopt, down_input, act, tokens, width_of(expert));
    }
    // Its routed tokens: for the layer's output, or for its down input (routed calibration).
    const std::int64_t count = r.count(e);
    if (count == 0 || !(finish || (want_down && !every_token))) continue;
    gather(e);
    expert_intermediate(x_e, expert, count, act);
    if (want_down && !every_token)
      (void)deliver(targets, std::nullopt, down_input, act, count, width_of(expert));
    if (!finish) continue;  // only the down inputs were wanted
    product(act, {Linear::Down, expert}, y, count);
    const auto begin = r.begin[static_cast<std::size_t>(e)];
    QSHARD_CUDA_CHECK(kernels::scatter_add_rows(y, r.rows_device.data() + begin,
                                                r.weights_device.data() + begin, count, hidden, acc,
                                                activation, s));
  }
  if (shared) {
    const std::int64_t width = width_of(kSharedExpert);
    expert_intermediate(xn, kSharedExpert, tokens, act);
    (void)deliver(targets, std::nullopt, {LinearInput::MlpDown, kSharedExpert}, act, tokens, width);
    if (!finish) return false;
    product(act, {Linear::Down, kSharedExpert}, y, tokens);
    auto* gate_logits = static_cast<float*>(logits.get(static_cast<std::size_t>(tokens) * 4));
    gemm(xn, shared_expert_gate.data(), 1, hidden, gate_logits, CUDA_R_32F, tokens);
    QSHARD_CUDA_CHECK(kernels::add_gated_rows(y, gate_logits, tokens, hidden, acc, activation, s));
  }
  return finish;
}

}  // namespace qshard::cuda
