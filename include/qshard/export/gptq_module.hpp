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

// GPTQ clients (GPTQModel 7, vLLM) hold a module's codes in qweight [in * bits / 32, out] and
// its zeros in qzeros [groups, out * bits / 32]: both dimensions must fill whole 32-bit words
// (in and out multiples of 8 at 4 bits, 16 at 2, 32 at 3, 4 at 8), and vLLM also needs whole
// groups (in a multiple of group_size unless it is -1). Returns why a module of `in` input and
// `out` output features cannot be stored packed, or nullopt when it can.
std::optional<std::string> gptq_unpackable_reason(std::int64_t in_features,
                                                  std::int64_t out_features, int bits,
                                                  std::int64_t group_size);

// Packs `weight` in the layout of `format`. `name` ("model.layers.0.mlp.up_proj") names the
// module in errors: a zero point of 0 has no v1 encoding (zero - 1 wraps to 2^bits - 1, which
// clients do not read back as 0), so the v1 format refuses it and suggests gptq_v2.
GptqModuleTensors pack_gptq_module(const QuantizedWeight& weight, GptqZeroFormat format,
                                   const std::string& name);

}  // namespace qshard
