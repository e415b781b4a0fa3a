#pragma once
// The GPTQ safetensors tensors of one quantized linear module: qweight, qzeros, scales, g_idx
// (layout and sources: docs/FORMATS.md).
#include <cstdint>
#include <optional>
#include <string>

#include "qshard/core/tensor.hpp"
#include "qshard/io/gptq_config.hpp"
#include "qshard/quant/quantized_weight.hpp"

namespace qshard {

struct GptqModuleTensors {
  Tensor qweight;  // int32 [in * bits / 32, out]: codes packed along the input features
  Tensor qzeros;   // int32 [groups, out * bits / 32]: zero points packed along the outputs
  Tensor scales;   // fp16 [groups, out]
  Tensor g_idx;    // int32 [in]: the group of every input feature
};

// GPTQ clients (GPTQModel, AutoGPTQ, transformers + optimum) allocate a module's buffers as
// qweight [in // 32 * bits, out] and qzeros [groups, out // 32 * bits]: those match the packed
// tensors only when both dimensions are multiples of 32. Returns why a module of `in` input and
// `out` output features cannot be stored packed, or nullopt when it can.
std::optional<std::string> gptq_unpackable_reason(std::int64_t in_features,
                                                  std::int64_t out_features);

// Packs `weight` in the layout of `format`. `name` ("model.layers.0.mlp.up_proj") names the
// module in errors: a zero point of 0 has no v1 encoding (zero - 1 wraps to 2^bits - 1, which
// clients do not read back as 0), so the v1 format refuses it and suggests gptq_v2.
GptqModuleTensors pack_gptq_module(const QuantizedWeight& weight, GptqZeroFormat format,
                                   const std::string& name);

}  // namespace qshard
