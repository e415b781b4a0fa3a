// One quantized module as GPTQ tensors.
#include "qshard/export/gptq_module.hpp"

#include <cstring>
#include <numeric>

#include "qshard/core/error.hpp"
#include "qshard/quant/packing.hpp"

namespace qshard {
namespace {

template <typename T>
Tensor tensor_of(const Matrix<T>& m, DType dtype) {
  Tensor t(dtype, {m.rows(), m.cols()});
  require(t.bytes().size() == m.size() * sizeof(T), "tensor_of: element size mismatch");
  if (m.size() > 0) std::memcpy(t.bytes().data(), m.data(), t.bytes().size());
  return t;
}

// The first zero point outside the range `format` can store, as "row r, group g (zero z)".
std::optional<std::string> unstorable_zero(const QuantizedWeight& w, GptqZeroFormat format) {
  const std::int32_t lowest = format == GptqZeroFormat::V1 ? 1 : 0;
  const std::int32_t maxq = (1 << w.bits) - 1;
  for (std::int64_t r = 0; r < w.zeros.rows(); ++r)
    for (std::int64_t g = 0; g < w.zeros.cols(); ++g) {
      const std::int32_t z = w.zeros(r, g);
      if (z < lowest || z > maxq) return str("output row ", r, ", group ", g, " has zero ", z);
    }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> gptq_unpackable_reason(std::int64_t in_features,
                                                  std::int64_t out_features, int bits,
                                                  std::int64_t group_size) {
  if ((in_features * bits) % 32 != 0 || (out_features * bits) % 32 != 0)
    return str(in_features, " input and ", out_features, " output features of ", bits,
               " bits do not both fill whole 32-bit words (multiples of ", 32 / std::gcd(32, bits),
               " needed)");
  if (group_size > 0 && in_features % group_size != 0)
    return str(in_features, " input features are not a multiple of the group size ", group_size,
               " (vLLM refuses a partial last group)");
  return std::nullopt;
}

GptqModuleTensors pack_gptq_module(const QuantizedWeight& w, GptqZeroFormat format,
                                   const std::string& name) {
  const std::int64_t out = w.rows(), in = w.cols();
  require(static_cast<std::int64_t>(w.g_idx.size()) == in, name, ": g_idx has ", w.g_idx.size(),
          " entries for ", in, " input features");
  require(w.scales.rows() == out && w.zeros.rows() == out && w.zeros.cols() == w.groups(), name,
          ": scales and zeros do not match ", out, " output features");
  for (std::int64_t c = 0; c < in; ++c) {
    const std::int32_t g = w.g_idx[static_cast<std::size_t>(c)];
    require(g >= 0 && g < w.groups(), name, ": g_idx[", c, "] = ", g, " is not one of the ",
            w.groups(), " groups");
  }
  if (const auto bad = unstorable_zero(w, format)) {
    throw Error(
        str(name, ": ", *bad, ", which the ", gptq_format_name(format), " format cannot store",
            format == GptqZeroFormat::V1
                ? " (v1 stores zero - 1; a zero of 0 wraps and clients would misread it). Export "
                  "with --checkpoint-format gptq_v2, which stores zeros as they are"
                : ""));
  }
  const int offset = format == GptqZeroFormat::V1 ? 1 : 0;
  GptqModuleTensors t;
  t.qweight = tensor_of(pack_qweight(w.codes, w.bits), DType::I32);
  t.qzeros = tensor_of(pack_qzeros(w.zeros, w.bits, offset), DType::I32);
  t.scales = tensor_of(pack_scales_f16(w.scales), DType::F16);
  t.g_idx = Tensor(DType::I32, {in});
  if (in > 0) std::memcpy(t.g_idx.bytes().data(), w.g_idx.data(), t.g_idx.bytes().size());
  return t;
}

}  // namespace qshard
